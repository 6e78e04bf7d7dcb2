"""The machinery the fixes share: post-import hooks, method swaps and the RecBole version guard.

A fix that needs a RecBole module is attached to it with :func:`when_imported`: it runs when (and
only when) that module is first imported, or at once if it already has been. The hooks are served
by one finder first on ``sys.meta_path`` (:class:`HookFinder`, process-wide: listed in the table
of ``recbole_sigma._recbole``); it answers only for the hooked module names, by asking the other
finders and wrapping the loader of the spec they return.

Only the standard library is imported here, so the package can be loaded on its own (the tests do
that to apply every fix but one).
"""
import importlib.abc
import sys
import types
import warnings

# Fixes that replace a RecBole function/method with a corrected copy of its body are only
# installed on the RecBole release those bodies were copied from.
COPIED_FROM_RECBOLE = ("1.2.1",)

HOOKS = {}  # module name -> list of (before, after) callables


class HookedLoader(importlib.abc.Loader):
    """Wraps a module's real loader to run hooks around ``exec_module``."""

    def __init__(self, loader, name):
        self._loader = loader
        self._name = name

    def __getattr__(self, name):  # get_source, is_package, ... of the real one
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        # Hide the wrapper: the module should see its real loader.
        module.__loader__ = self._loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        hooks = list(HOOKS.get(self._name, ()))
        states = [before(module) if before else None for before, _ in hooks]
        self._loader.exec_module(module)
        for (_, after), state in zip(hooks, states):
            run_hook(after, module, state)


class HookFinder(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path``; only answers for hooked module names."""

    def __init__(self):
        self._busy = set()  # names being looked up (guards against re-entry)

    def find_spec(self, fullname, path, target=None):
        if fullname not in HOOKS or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                        spec.loader = HookedLoader(spec.loader, fullname)
                    return spec
            return None
        finally:
            self._busy.discard(fullname)


HOOK_FINDER = HookFinder()


def run_hook(after, module, state):
    try:
        after(module, state)
    except Exception as exc:  # a failed fix must not break the import itself
        warnings.warn(
            f"recbole_sigma._recbole: {after.__name__} failed on {module.__name__}: {exc!r}",
            RuntimeWarning,
            stacklevel=2,
        )


def when_imported(name, after, before=None):
    """Call ``after(module, before(module))`` once ``name`` has been executed; ``before`` runs on
    the new, still empty module right before its code does.

    If ``name`` is already imported, ``after(module, None)`` runs now (the state before its import
    is unknown then). Registration is idempotent.
    """
    hooks = HOOKS.setdefault(name, [])
    if (before, after) not in hooks:
        hooks.append((before, after))
    if HOOK_FINDER not in sys.meta_path:
        sys.meta_path.insert(0, HOOK_FINDER)
    module = sys.modules.get(name)
    if module is not None:
        run_hook(after, module, None)


def recbole_version_ok(fix_name):
    """True on the RecBole release the copied bodies come from; else one warning, False."""
    version = getattr(sys.modules.get("recbole"), "__version__", None)
    if version in COPIED_FROM_RECBOLE:
        return True
    warnings.warn(
        f"recbole_sigma._recbole: {fix_name} was written for RecBole "
        f"{'/'.join(COPIED_FROM_RECBOLE)}, found {version}; not applied.",
        RuntimeWarning,
        stacklevel=3,
    )
    return False


def install(cls, name, replacement):
    """``cls.<name> = replacement`` (docstring and names kept); the original stays reachable as
    ``<method>._recbole_original``. Idempotent."""
    original = cls.__dict__[name]
    if original is replacement:
        return
    replacement.__doc__ = original.__doc__
    replacement.__name__ = name
    replacement.__qualname__ = f"{cls.__name__}.{name}"
    replacement._recbole_original = original
    setattr(cls, name, replacement)


class ModuleProxy(types.ModuleType):
    """A module as one RecBole module sees it (set as that module's global): every attribute is
    the wrapped module's, except those the subclass (or ``extra``) defines."""

    def __init__(self, wrapped, extra=None):
        super().__init__(wrapped.__name__, wrapped.__doc__)
        self.__dict__["_wrapped"] = wrapped
        self.__dict__.update(extra or {})

    def __getattr__(self, name):
        return getattr(self.__dict__["_wrapped"], name)

    def __repr__(self):
        return f"<recbole_sigma._recbole.{type(self).__name__} over {self.__dict__['_wrapped']!r}>"

    @classmethod
    def wraps(cls, module):
        """Whether ``module`` is, or wraps (through other proxies), a ``cls``."""
        while isinstance(module, ModuleProxy):
            if isinstance(module, cls):
                return True
            module = module.__dict__["_wrapped"]
        return False
