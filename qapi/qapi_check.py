"""Semantic checks of QAPI schema expressions, as blockd uses them.

The reader (qapi_parser) only knows the JSON dialect; this module knows
what the expressions mean: which keys each kind of definition may have,
how names are spelled, that every referenced type exists, that a flat
union's discriminator is an enum member of its base, that alternate
branches can be told apart on the wire, and blockd's two extension
expressions ('extend-enum' and 'extend-union').  It also evaluates 'if'
conditions for blockd's build (Linux) and drops what is configured out.

Errors are raised as SchemaError whose text starts with "file:line: ".
"""
import re

BUILTIN_TYPES = {
    'str': 'string', 'number': 'number', 'int': 'int', 'int8': 'int',
    'int16': 'int', 'int32': 'int', 'int64': 'int', 'uint8': 'int',
    'uint16': 'int', 'uint32': 'int', 'uint64': 'int', 'size': 'int',
    'bool': 'boolean', 'null': 'null', 'any': 'value', 'QType': 'string',
}

# Configuration symbols that are true for blockd on Linux.  Anything not
# listed is false (Windows, SPICE, libblkio, replication, ...).
DEFAULT_DEFINES = frozenset([
    'CONFIG_POSIX', 'CONFIG_LINUX', 'CONFIG_LINUX_AIO',
    'CONFIG_LINUX_IO_URING', 'CONFIG_FUSE', 'CONFIG_FUSE_LSEEK',
    'CONFIG_VHOST_USER_BLK_SERVER', 'CONFIG_VDUSE_BLK_EXPORT',
    'CONFIG_SECRET_KEYRING', 'HAVE_HOST_BLOCK_DEVICE', 'HAVE_IPPROTO_MPTCP',
])

# Allowed and required top-level keys of each meta-type.
META_KEYS = {
    'enum': ({'enum', 'data', 'prefix', 'if', 'features'}, {'data'}),
    'struct': ({'struct', 'data', 'base', 'if', 'features'}, {'data'}),
    'union': ({'union', 'base', 'discriminator', 'data', 'if', 'features'},
              {'base', 'discriminator', 'data'}),
    'alternate': ({'alternate', 'data', 'if', 'features'}, {'data'}),
    'command': ({'command', 'data', 'returns', 'boxed', 'if', 'features',
                 'gen', 'success-response', 'allow-oob', 'allow-preconfig',
                 'coroutine'}, set()),
    'event': ({'event', 'data', 'boxed', 'if', 'features'}, set()),
    'extend-enum': ({'extend-enum', 'data', 'if'}, {'data'}),
    'extend-union': ({'extend-union', 'data', 'if'}, {'data'}),
}

NAME_RE = re.compile(r'^(__[a-zA-Z0-9.-]+_)?[a-zA-Z][a-zA-Z0-9_-]*$')
VALUE_RE = re.compile(r'^(__[a-zA-Z0-9.-]+_)?[a-zA-Z0-9][a-zA-Z0-9_.-]*$')

# How alternate branches are told apart: by the JSON type of the value.
_ALT_JSON = {'string': 'string', 'number': 'number', 'int': 'number',
             'boolean': 'boolean', 'null': 'null'}


class SchemaError(Exception):
    def __init__(self, info, msg):
        super().__init__('%s: %s' % (info, msg))


def meta_of(expr):
    """The meta-type of @expr (its first known key), or None."""
    for key in expr:
        if key in META_KEYS:
            return key
    return None


def eval_cond(cond, defines, info):
    """Evaluate an 'if' condition against the set of true @defines."""
    if isinstance(cond, str):
        return cond in defines
    if isinstance(cond, dict) and len(cond) == 1:
        (op, arg), = cond.items()
        if op == 'not':
            return not eval_cond(arg, defines, info)
        if op in ('all', 'any') and isinstance(arg, list) and arg:
            vals = [eval_cond(c, defines, info) for c in arg]
            return all(vals) if op == 'all' else any(vals)
    raise SchemaError(info, "'if' condition must be a string or an object "
                      "with one member 'all', 'any' or 'not'")


class Checker:
    """Collects definitions (from base schemas and the fragment being
    checked) and checks the fragment's expressions against them."""

    def __init__(self, defines=DEFAULT_DEFINES):
        self.defines = set(defines)
        self.defs = {}          # name -> (meta, expr, info)
        self.enum_values = {}   # enum name -> set of values
        self.union_extra = {}   # union name -> branches added by extension

    # -- 'if' pruning ----------------------------------------------------

    def _keep(self, thing, info):
        if isinstance(thing, dict) and 'if' in thing:
            return eval_cond(thing['if'], self.defines, info)
        return True

    def _prune_features(self, feats, info):
        if not isinstance(feats, list):
            raise SchemaError(info, "'features' must be an array")
        out = []
        for f in feats:
            if isinstance(f, str):
                out.append(f)
            elif isinstance(f, dict) and isinstance(f.get('name'), str) \
                    and set(f) <= {'name', 'if'}:
                if self._keep(f, info):
                    out.append(f['name'])
            else:
                raise SchemaError(info, "feature must be a string or an "
                                  "object with 'name' and optional 'if'")
            if not NAME_RE.match(out[-1] if out else 'x'):
                raise SchemaError(info, "invalid feature name '%s'" % out[-1])
        return out

    def _prune_members(self, data, info, what):
        """Drop configured-out members of a MEMBERS object; longhand
        members lose their 'if' and become shorthand when nothing else is
        left."""
        if not isinstance(data, dict):
            raise SchemaError(info, "%s must be an object" % what)
        out = {}
        for name, val in data.items():
            if isinstance(val, dict):
                if 'type' not in val or not set(val) <= {'type', 'if',
                                                         'features'}:
                    raise SchemaError(info, "%s member '%s' must have "
                                      "'type' and may have 'if' and "
                                      "'features' only" % (what, name))
                if not self._keep(val, info):
                    continue
                feats = self._prune_features(val.get('features', []), info)
                val = ({'type': val['type'], 'features': feats}
                       if feats else val['type'])
            out[name] = val
        return out

    def _prune_values(self, data, info):
        if not isinstance(data, list):
            raise SchemaError(info, "enum 'data' must be an array")
        out = []
        for v in data:
            if isinstance(v, dict):
                if not isinstance(v.get('name'), str) or \
                        not set(v) <= {'name', 'if', 'features'}:
                    raise SchemaError(info, "enum value must be a string or "
                                      "an object with 'name' and optional "
                                      "'if' and 'features'")
                if not self._keep(v, info):
                    continue
                feats = self._prune_features(v.get('features', []), info)
                v = {'name': v['name'], 'features': feats} if feats \
                    else v['name']
            elif not isinstance(v, str):
                raise SchemaError(info, "enum value must be a string")
            out.append(v)
        return out

    def prune(self, expr, info):
        """Return @expr with 'if' evaluated, or None if configured out."""
        meta = meta_of(expr)
        if meta is None:
            raise SchemaError(info, "expression has no known meta-type key "
                              "(one of %s)" % ', '.join(sorted(META_KEYS)))
        allowed, required = META_KEYS[meta]
        if list(expr)[0] != meta:
            raise SchemaError(info, "'%s' must be the first key" % meta)
        for key in expr:
            if key not in allowed:
                raise SchemaError(info, "%s '%s' has unknown key '%s'"
                                  % (meta, expr[meta], key))
        for key in sorted(required):
            if key not in expr:
                raise SchemaError(info, "%s '%s' lacks key '%s'"
                                  % (meta, expr[meta], key))
        if not isinstance(expr[meta], str):
            raise SchemaError(info, "'%s' must name a definition" % meta)
        if not self._keep(expr, info):
            return None
        out = {}
        for key, val in expr.items():
            if key == 'if':
                continue
            if key == 'features':
                val = self._prune_features(val, info)
                if not val:
                    continue
            elif key == 'data' and meta in ('enum', 'extend-enum'):
                val = self._prune_values(val, info)
            elif key == 'data' and isinstance(val, dict):
                val = self._prune_members(val, info, "'data'")
            elif key == 'base' and isinstance(val, dict):
                val = self._prune_members(val, info, "'base'")
            out[key] = val
        return out

    # -- definitions -----------------------------------------------------

    def define(self, expr, info):
        """Record the name an expression defines (pass 1)."""
        meta = meta_of(expr)
        name = expr[meta]
        if meta in ('extend-enum', 'extend-union'):
            return
        if meta in ('command', 'event'):
            ok = NAME_RE.match(name)
        else:
            ok = NAME_RE.match(name) and not name.startswith('q_')
        if not ok:
            raise SchemaError(info, "invalid %s name '%s'" % (meta, name))
        if name in self.defs or name in BUILTIN_TYPES:
            prev = self.defs.get(name, ('builtin', None, 'built-in'))[2]
            raise SchemaError(info, "'%s' is already defined at %s"
                              % (name, prev))
        self.defs[name] = (meta, expr, info)
        if meta == 'enum':
            self.enum_values[name] = set()
            self._add_values(name, expr['data'], info)

    def _add_values(self, enum, values, info):
        seen = self.enum_values[enum]
        for v in values:
            vname = v if isinstance(v, str) else v['name']
            if not VALUE_RE.match(vname):
                raise SchemaError(info, "invalid value '%s' of enum '%s'"
                                  % (vname, enum))
            if vname in seen:
                raise SchemaError(info, "enum '%s' already has value '%s'"
                                  % (enum, vname))
            seen.add(vname)

    def _kind(self, tname):
        if tname in BUILTIN_TYPES:
            return 'builtin'
        d = self.defs.get(tname)
        return d[0] if d else None

    def _check_type(self, t, info, what, allow_array=True, want=None):
        """Check a type reference; @want restricts the meta-types."""
        if isinstance(t, list):
            if not allow_array or len(t) != 1 or not isinstance(t[0], str):
                raise SchemaError(info, "%s: an array type must be a list "
                                  "of one type name" % what)
            t = t[0]
            if want is not None:
                raise SchemaError(info, "%s cannot be an array" % what)
        if not isinstance(t, str):
            raise SchemaError(info, "%s must name a type" % what)
        kind = self._kind(t)
        if kind is None:
            raise SchemaError(info, "%s uses unknown type '%s'" % (what, t))
        if kind in ('command', 'event'):
            raise SchemaError(info, "%s uses '%s', which is a %s, not a type"
                              % (what, t, kind))
        if want is not None and kind not in want:
            raise SchemaError(info, "%s must be %s, not %s '%s'"
                              % (what, ' or '.join(sorted(want)), kind, t))
        return t

    def _check_members(self, data, info, what, optional_ok=True):
        names = set()
        for name, val in data.items():
            plain = name
            if name.startswith('*'):
                if not optional_ok:
                    raise SchemaError(info, "%s '%s' cannot be optional"
                                      % (what, name[1:]))
                plain = name[1:]
            if not NAME_RE.match(plain):
                raise SchemaError(info, "invalid %s name '%s'" % (what, name))
            if plain == 'u' or plain.startswith(('has-', 'has_')):
                raise SchemaError(info, "%s name '%s' is reserved"
                                  % (what, plain))
            if plain in names:
                raise SchemaError(info, "%s '%s' appears twice"
                                  % (what, plain))
            names.add(plain)
            t = val['type'] if isinstance(val, dict) else val
            self._check_type(t, info, "%s '%s'" % (what, plain))
        return names

    def _struct_members(self, name, seen=()):
        """Members (name -> type) of struct or union base @name,
        following bases."""
        meta, expr, info = self.defs[name]
        if name in seen:
            raise SchemaError(info, "'%s' includes itself through its base"
                              % name)
        out = {}
        base = expr.get('base')
        if isinstance(base, str):
            out.update(self._struct_members(base, seen + (name,)))
        elif isinstance(base, dict):
            out.update(self._plain(base))
        if meta == 'struct':
            out.update(self._plain(expr['data']))
        return out

    @staticmethod
    def _plain(data):
        return {k: (v['type'] if isinstance(v, dict) else v)
                for k, v in data.items()}

    def check(self, expr, info):
        """Check one (pruned) expression (pass 2)."""
        meta = meta_of(expr)
        name = expr[meta]
        getattr(self, '_check_' + meta.replace('-', '_'))(name, expr, info)

    def _check_enum(self, name, expr, info):
        if 'prefix' in expr and not isinstance(expr['prefix'], str):
            raise SchemaError(info, "enum '%s': 'prefix' must be a string"
                              % name)

    def _check_struct(self, name, expr, info):
        if not isinstance(expr['data'], dict):
            raise SchemaError(info, "struct '%s': 'data' must be an object"
                              % name)
        if 'base' in expr:
            self._check_type(expr['base'], info, "base of '%s'" % name,
                             allow_array=False, want={'struct'})
        own = self._check_members(expr['data'], info, 'member')
        if isinstance(expr.get('base'), str):
            inherited = {k.lstrip('*')
                         for k in self._struct_members(expr['base'])}
            for m in sorted(own & inherited):
                raise SchemaError(info, "member '%s' of struct '%s' is "
                                  "already a member of its base" % (m, name))

    def _union_base(self, name, expr, info):
        base = expr['base']
        if isinstance(base, dict):
            self._check_members(base, info, 'base member')
            return self._plain(base)
        self._check_type(base, info, "base of union '%s'" % name,
                         allow_array=False, want={'struct'})
        return self._struct_members(base)

    def _check_union(self, name, expr, info):
        members = self._union_base(name, expr, info)
        disc = expr['discriminator']
        if not isinstance(disc, str) or disc not in members:
            raise SchemaError(info, "discriminator '%s' of union '%s' is not "
                              "a mandatory member of its base" % (disc, name))
        dtype = members[disc]
        if self._kind(dtype) != 'enum':
            raise SchemaError(info, "discriminator '%s' of union '%s' must "
                              "be of enum type, not '%s'"
                              % (disc, name, dtype))
        data = expr['data']
        if not isinstance(data, dict):
            raise SchemaError(info, "union '%s': 'data' must be an object"
                              % name)
        for case, t in data.items():
            if case not in self.enum_values[dtype]:
                raise SchemaError(info, "branch '%s' of union '%s' is not a "
                                  "value of enum '%s'" % (case, name, dtype))
            self._check_branch_type(t, info, name, case)

    def _check_branch_type(self, t, info, union, case):
        if isinstance(t, dict):
            t = t['type']
        self._check_type(t, info, "branch '%s' of union '%s'" % (case, union),
                         allow_array=False, want={'struct'})

    def _check_alternate(self, name, expr, info):
        data = expr['data']
        if not isinstance(data, dict) or not data:
            raise SchemaError(info, "alternate '%s' needs at least one "
                              "branch" % name)
        seen = {}
        for case, t in data.items():
            if case.startswith('*') or not NAME_RE.match(case):
                raise SchemaError(info, "invalid branch name '%s' of "
                                  "alternate '%s'" % (case, name))
            if isinstance(t, dict):
                t = t['type']
            # an array branch takes a JSON array (QEMU 10.1 allows them)
            is_array = isinstance(t, list)
            t = self._check_type(t, info, "branch '%s' of alternate '%s'"
                                 % (case, name))
            kind = 'array' if is_array else self._kind(t)
            if kind == 'alternate':
                raise SchemaError(info, "alternate '%s' cannot contain "
                                  "alternate '%s'" % (name, t))
            if kind == 'builtin':
                json = _ALT_JSON.get(BUILTIN_TYPES[t])
                if json is None:
                    raise SchemaError(info, "alternate '%s' cannot have a "
                                      "branch of type '%s'" % (name, t))
            elif kind == 'enum':
                json = 'string'
            elif kind == 'array':
                json = 'array'
            else:
                json = 'object'
            if json in seen:
                raise SchemaError(info, "branches '%s' and '%s' of alternate "
                                  "'%s' cannot be told apart"
                                  % (seen[json], case, name))
            seen[json] = case

    def _check_args(self, name, expr, info, meta):
        data = expr.get('data')
        if data is None:
            if expr.get('boxed'):
                raise SchemaError(info, "%s '%s': 'boxed' needs 'data'"
                                  % (meta, name))
            return
        if isinstance(data, dict):
            if expr.get('boxed'):
                raise SchemaError(info, "%s '%s': 'boxed' needs a type "
                                  "name as 'data'" % (meta, name))
            self._check_members(data, info, 'argument')
        else:
            want = {'struct', 'union', 'alternate'} if expr.get('boxed') \
                else {'struct'}
            self._check_type(data, info, "'data' of %s '%s'" % (meta, name),
                             allow_array=False, want=want)

    def _check_command(self, name, expr, info):
        self._check_args(name, expr, info, 'command')
        for key in ('boxed', 'gen', 'success-response', 'allow-oob',
                    'allow-preconfig', 'coroutine'):
            if key in expr and not isinstance(expr[key], bool):
                raise SchemaError(info, "command '%s': '%s' must be true or "
                                  "false" % (name, key))
        if 'returns' in expr:
            self._check_type(expr['returns'], info,
                             "'returns' of command '%s'" % name)

    def _check_event(self, name, expr, info):
        self._check_args(name, expr, info, 'event')

    def _check_extended(self, name, info, kind):
        found = self._kind(name)
        if found is None:
            raise SchemaError(info, "extend-%s: unknown %s '%s' (is the "
                              "schema that defines it passed with --base?)"
                              % (kind, kind, name))
        if found != kind:
            raise SchemaError(info, "extend-%s: '%s' is a %s, not a %s"
                              % (kind, name, found, kind))

    def _check_extend_enum(self, name, expr, info):
        self._check_extended(name, info, 'enum')
        self._add_values(name, expr['data'], info)

    def _check_extend_union(self, name, expr, info):
        self._check_extended(name, info, 'union')
        data = expr['data']
        if not isinstance(data, dict) or not data:
            raise SchemaError(info, "extend-union '%s': 'data' must be a "
                              "non-empty object" % name)
        uexpr, uinfo = self.defs[name][1], self.defs[name][2]
        base = uexpr['base']
        members = (self._plain(base) if isinstance(base, dict)
                   else self._struct_members(base))
        dtype = members[uexpr['discriminator']]
        for case, t in data.items():
            if not VALUE_RE.match(case):
                raise SchemaError(info, "invalid branch name '%s'" % case)
            extra = self.union_extra.setdefault(name, {})
            if case in uexpr['data'] or case in extra:
                raise SchemaError(info, "union '%s' already has branch '%s' "
                                  "(%s)" % (name, case, uinfo))
            self._check_branch_type(t, info, name, case)
            # The branch's value joins the discriminator enum if absent.
            self.enum_values[dtype].add(case)
            extra[case] = t


def check_all(checker, items):
    """Prune, define and check a list of (expr, info) of one schema;
    returns the pruned list.  Definitions go to @checker first so that
    references may point forward."""
    pruned = []
    for expr, info in items:
        p = checker.prune(expr, info)
        if p is not None:
            pruned.append((p, info))
    for expr, info in pruned:
        checker.define(expr, info)
    for expr, info in pruned:
        checker.check(expr, info)
    return pruned
