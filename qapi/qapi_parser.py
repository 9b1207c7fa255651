"""A reader for the QAPI schema language (the JSON dialect of QEMU's
qapi/*.json): single- or double-quoted strings, objects, arrays, true and
false, '#' comments.  Returns the top-level expressions with the doc
comment block that precedes each.
"""


class QAPIParseError(Exception):
    def __init__(self, fname, line, col, msg):
        super().__init__('%s:%d:%d: %s' % (fname, line, col, msg))


class _Reader:
    def __init__(self, text, fname):
        self.text = text
        self.fname = fname
        self.pos = 0
        self.line = 1
        self.line_start = 0
        self.pending_doc = []

    def error(self, msg):
        raise QAPIParseError(self.fname, self.line,
                             self.pos - self.line_start + 1, msg)

    def skip_space(self):
        t = self.text
        while self.pos < len(t):
            ch = t[self.pos]
            if ch == '\n':
                self.pos += 1
                self.line += 1
                self.line_start = self.pos
            elif ch in ' \t\r':
                self.pos += 1
            elif ch == '#':
                end = t.find('\n', self.pos)
                if end < 0:
                    end = len(t)
                self.pending_doc.append(t[self.pos:end])
                self.pos = end
            else:
                return

    def value(self):
        self.skip_space()
        if self.pos >= len(self.text):
            self.error('expected a value, found end of file')
        ch = self.text[self.pos]
        if ch == '{':
            return self.obj()
        if ch == '[':
            return self.arr()
        if ch in '\'"':
            return self.string()
        for word, val in (('true', True), ('false', False)):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return val
        self.error("unexpected character %r" % ch)

    def string(self):
        quote = self.text[self.pos]
        self.pos += 1
        out = []
        while True:
            if self.pos >= len(self.text) or self.text[self.pos] == '\n':
                self.error('unterminated string')
            ch = self.text[self.pos]
            self.pos += 1
            if ch == quote:
                return ''.join(out)
            if ch == '\\':
                if self.pos >= len(self.text):
                    self.error('unterminated string')
                ch = self.text[self.pos]
                self.pos += 1
                if ch not in '\\/\'"':
                    self.error("unsupported escape '\\%s'" % ch)
            out.append(ch)

    def obj(self):
        self.pos += 1
        out = {}
        self.skip_space()
        if self.text.startswith('}', self.pos):
            self.pos += 1
            return out
        while True:
            self.skip_space()
            if self.pos >= len(self.text) or self.text[self.pos] not in '\'"':
                self.error('expected a string key')
            key = self.string()
            if key in out:
                self.error("duplicate key '%s'" % key)
            self.skip_space()
            if not self.text.startswith(':', self.pos):
                self.error("expected ':'")
            self.pos += 1
            out[key] = self.value()
            self.skip_space()
            if self.text.startswith('}', self.pos):
                self.pos += 1
                return out
            if not self.text.startswith(',', self.pos):
                self.error("expected ',' or '}'")
            self.pos += 1

    def arr(self):
        self.pos += 1
        out = []
        self.skip_space()
        if self.text.startswith(']', self.pos):
            self.pos += 1
            return out
        while True:
            out.append(self.value())
            self.skip_space()
            if self.text.startswith(']', self.pos):
                self.pos += 1
                return out
            if not self.text.startswith(',', self.pos):
                self.error("expected ',' or ']'")
            self.pos += 1


def parse_schema_text(text, fname='<schema>'):
    """Return a list of (expression, doc_lines, line) tuples."""
    r = _Reader(text, fname)
    exprs = []
    while True:
        r.pending_doc = []
        r.skip_space()
        if r.pos >= len(text):
            return exprs
        line = r.line
        doc = r.pending_doc
        if text[r.pos] != '{':
            r.error('top-level expressions must be objects')
        exprs.append((r.value(), doc, line))
