# repro's in-process probe. `repro run` puts the folder holding this file first on
# PYTHONPATH, so every Python process of the run (the script, a launcher's ranks, a notebook
# kernel) imports it at start-up as `sitecustomize`. It records what the process actually
# did — files opened, seeds set, modules imported, the frameworks' determinism settings —
# and writes one report per process into $REPRO_PROBE_DIR when the process exits.
#
# Rules it keeps: it never changes what the script computes (wrappers call the original
# with the same arguments and return its result), it never fails the script (its own errors
# go into the report, not onto the user's stderr), and it is cheap: the audit hook only
# appends the event's own argument tuple, and everything else happens once, at exit.
import sys
import os


def _repro_probe():
    out_dir = os.environ.get("REPRO_PROBE_DIR")
    if not out_dir:
        return
    here = os.path.dirname(os.path.abspath(__file__))
    # The folder served only to find this module: the script's sys.path stays its own.
    # PYTHONPATH keeps it, so child processes (torchrun's ranks, a kernel) get the probe too.
    sys.path[:] = [p for p in sys.path if p != here]

    events = []
    errors = []
    seeds = []
    loaders = []
    state = {"cwd": os.getcwd(), "compacted": {}, "order": 0, "in_seed": False}
    append = events.append

    def audit(event, args):
        if event == "open":
            append(args)
            if len(events) > 200000:
                compact()
        elif event == "os.chdir":
            append((None, args[0], 0))

    def compact():
        # Keeps memory bounded for scripts that open millions of files: fold the raw
        # events into one entry per path and start again.
        seen = state["compacted"]
        cwd = state["cwd"]
        order = state["order"]
        for path, mode, flags in events:
            order += 1
            if path is None:
                try:
                    cwd = os.path.normpath(os.path.join(cwd, os.fsdecode(mode)))
                except Exception:
                    pass
                continue
            if isinstance(path, int):
                continue
            try:
                p = os.fsdecode(os.fspath(path))
            except Exception:
                continue
            if not p.startswith("/"):
                p = os.path.join(cwd, p)
            if mode is not None:
                write = "w" in mode or "a" in mode or "x" in mode or "+" in mode
            else:
                write = bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND))
            entry = seen.get(p)
            if entry is None:
                seen[p] = [order, order, write, not write, write]
            else:
                entry[1] = order
                if write:
                    entry[2] = True
                else:
                    entry[3] = True
        state["cwd"] = cwd
        state["order"] = order
        del events[:]

    def record_seed(via, value):
        if len(seeds) >= 200:
            return
        if value is None:
            shown = None
        else:
            try:
                shown = int(value)
                if not -(2**63) <= shown < 2**64:
                    shown = str(shown)
            except Exception:
                shown = repr(value)[:80]
        item = [via, shown]
        if item not in seeds:
            seeds.append(item)

    library = tuple(sorted({sys.prefix + "/", sys.base_prefix + "/", sys.exec_prefix + "/"}))

    def wanted(via, value, caller):
        # Libraries make generators for themselves (scipy and scikit-learn call default_rng
        # with a Generator or a SeedSequence's entropy): only the script's own seeding, and
        # a library's seeding helper (Lightning's seed_everything) with a plain integer, count.
        is_int = isinstance(value, int) or type(value).__name__.startswith(("int", "uint"))
        if value is not None and not is_int:
            return False
        from_library = caller.startswith(library) or "/site-packages/" in caller or caller.startswith("<frozen")
        if from_library:
            return is_int and not via.endswith("default_rng")
        return True

    def seeding(via, original, arg_name, position=0):
        # A wrapper that records the seed given and calls the original unchanged. Nested
        # seeding (torch.manual_seed seeding CUDA too) is recorded once, as the outer call.
        def wrapper(*args, **kwargs):
            if not state["in_seed"]:
                try:
                    if len(args) > position:
                        value = args[position]
                    else:
                        value = kwargs.get(arg_name)
                    if wanted(via, value, sys._getframe(1).f_code.co_filename):
                        record_seed(via, value)
                except Exception as e:
                    errors.append("recording %s: %r" % (via, e))
            outer = not state["in_seed"]
            state["in_seed"] = True
            try:
                return original(*args, **kwargs)
            finally:
                if outer:
                    state["in_seed"] = False

        try:
            wrapper.__name__ = original.__name__
            wrapper.__qualname__ = getattr(original, "__qualname__", original.__name__)
            wrapper.__doc__ = original.__doc__
            wrapper.__wrapped__ = original
        except Exception:
            pass
        return wrapper

    def patch(module, attr, via, arg_name, position=0):
        original = getattr(module, attr, None)
        if original is None or getattr(original, "__wrapped__", None) is not None:
            return
        setattr(module, attr, seeding(via, original, arg_name, position))

    def patch_random(m):
        patch(m, "seed", "random.seed", "a")

    def patch_numpy_random(m):
        patch(m, "seed", "numpy.random.seed", "seed")
        patch(m, "default_rng", "numpy.random.default_rng", "seed")

    def patch_torch(m):
        patch(m, "manual_seed", "torch.manual_seed", "seed")
        rnd = getattr(m, "random", None)
        if rnd is not None:
            patch(rnd, "manual_seed", "torch.manual_seed", "seed")
        cuda = getattr(m, "cuda", None)
        if cuda is not None:
            patch(cuda, "manual_seed", "torch.cuda.manual_seed", "seed")
            patch(cuda, "manual_seed_all", "torch.cuda.manual_seed_all", "seed")
        data = sys.modules.get("torch.utils.data")
        if data is not None:
            patch_torch_data(data)

    def patch_torch_data(m):
        cls = getattr(m, "DataLoader", None)
        init = getattr(cls, "__init__", None)
        if cls is None or init is None or getattr(init, "__wrapped__", None) is not None:
            return

        def __init__(self, *args, **kwargs):
            init(self, *args, **kwargs)
            try:
                if len(loaders) < 50:
                    loaders.append(
                        {
                            "num_workers": int(getattr(self, "num_workers", 0) or 0),
                            "worker_init_fn": getattr(self, "worker_init_fn", None) is not None,
                            "generator": getattr(self, "generator", None) is not None,
                        }
                    )
            except Exception as e:
                errors.append("recording a DataLoader: %r" % (e,))

        __init__.__wrapped__ = init
        __init__.__doc__ = init.__doc__
        cls.__init__ = __init__

    def patch_tensorflow(m):
        rnd = getattr(m, "random", None)
        if rnd is not None:
            patch(rnd, "set_seed", "tf.random.set_seed", "seed")
        utils = getattr(getattr(m, "keras", None), "utils", None)
        if utils is not None:
            patch(utils, "set_random_seed", "tf.keras.utils.set_random_seed", "seed")

    def patch_jax_random(m):
        patch(m, "PRNGKey", "jax.random.PRNGKey", "seed")
        patch(m, "key", "jax.random.key", "seed")

    patchers = {
        "random": patch_random,
        "numpy.random": patch_numpy_random,
        "torch": patch_torch,
        "torch.utils.data": patch_torch_data,
        "tensorflow": patch_tensorflow,
        "jax.random": patch_jax_random,
    }

    class Loader:
        # Runs the real loader, then patches the module before anyone else sees it.
        def __init__(self, inner, name):
            self._inner = inner
            self._name = name

        def create_module(self, spec):
            return self._inner.create_module(spec)

        def exec_module(self, module):
            spec = getattr(module, "__spec__", None)
            if spec is not None and spec.loader is self:
                spec.loader = self._inner
            if getattr(module, "__loader__", None) is self:
                module.__loader__ = self._inner
            self._inner.exec_module(module)
            try:
                patchers[self._name](module)
            except Exception as e:
                errors.append("patching %s: %r" % (self._name, e))

        def __getattr__(self, name):
            return getattr(self._inner, name)

    class Finder:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name not in patchers:
                return None
            for finder in sys.meta_path:
                if finder is Finder:
                    continue
                find = getattr(finder, "find_spec", None)
                if find is None:
                    continue
                spec = find(name, path, target)
                if spec is not None:
                    break
            else:
                return None
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = Loader(spec.loader, name)
            return spec

    def on_exception(kind, value, tb):
        try:
            state["exception"] = {
                "type": getattr(kind, "__name__", str(kind)),
                "message": str(value)[:500],
                "filename": getattr(value, "filename", None) if isinstance(value, OSError) else None,
            }
        except Exception:
            pass
        previous(kind, value, tb)

    def torch_state(torch):
        import warnings

        with warnings.catch_warnings():
            # Reading the TF32 flags warns on recent torch; the user's stderr stays theirs.
            warnings.simplefilter("ignore")
            s = {"version": str(getattr(torch, "__version__", ""))}
            getters = {
                "cuda": lambda: torch.version.cuda,
                "deterministic_algorithms": torch.are_deterministic_algorithms_enabled,
                "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled,
                "cudnn_deterministic": lambda: bool(torch.backends.cudnn.deterministic),
                "cudnn_benchmark": lambda: bool(torch.backends.cudnn.benchmark),
                "matmul_allow_tf32": lambda: bool(torch.backends.cuda.matmul.allow_tf32),
                "cudnn_allow_tf32": lambda: bool(torch.backends.cudnn.allow_tf32),
                "float32_matmul_precision": torch.get_float32_matmul_precision,
                "num_threads": torch.get_num_threads,
                "num_interop_threads": torch.get_num_interop_threads,
                "initial_seed": torch.initial_seed,
                "cuda_available": torch.cuda.is_available,
            }
            for key, get in getters.items():
                try:
                    s[key] = get()
                except Exception as e:
                    errors.append("torch %s: %r" % (key, e))
            if s.get("cuda_available"):
                try:
                    s["cudnn"] = torch.backends.cudnn.version()
                    s["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
                except Exception as e:
                    errors.append("torch devices: %r" % (e,))
            return s

    def frameworks():
        out = {}
        torch = sys.modules.get("torch")
        if torch is not None and hasattr(torch, "are_deterministic_algorithms_enabled"):
            out["torch"] = torch_state(torch)
        tf = sys.modules.get("tensorflow")
        if tf is not None:
            t = {"version": str(getattr(tf, "__version__", ""))}
            try:
                t["op_determinism"] = bool(tf.config.experimental.is_op_determinism_enabled())
            except Exception as e:
                errors.append("tensorflow op determinism: %r" % (e,))
            out["tensorflow"] = t
        jax = sys.modules.get("jax")
        if jax is not None:
            j = {"version": str(getattr(jax, "__version__", ""))}
            for flag in ("jax_enable_x64", "jax_default_prng_impl", "jax_default_matmul_precision"):
                try:
                    j[flag] = str(getattr(jax.config, flag))
                except Exception:
                    pass
            out["jax"] = j
        if "numpy" in sys.modules or torch is not None:
            try:
                import threadpoolctl

                out["threadpools"] = [
                    {
                        "api": i.get("internal_api") or i.get("user_api"),
                        "num_threads": i.get("num_threads"),
                        "version": i.get("version"),
                    }
                    for i in threadpoolctl.threadpool_info()
                ]
            except ImportError:
                pass
            except Exception as e:
                errors.append("threadpoolctl: %r" % (e,))
        return out

    def modules():
        # Top-level modules that came from a file, for mapping to distributions.
        found = {}
        for name, m in list(sys.modules.items()):
            if "." in name or name.startswith("_") or name == "sitecustomize":
                continue
            f = getattr(m, "__file__", None)
            if f and ("/site-packages/" in f or "/dist-packages/" in f):
                found[name] = f
        return found

    escapes = {i: "\\u%04x" % i for i in range(32)}
    escapes[ord('"')] = '\\"'
    escapes[ord("\\")] = "\\\\"

    def to_json(v):
        # `json` costs milliseconds to import at every exit; the report holds only these types.
        if v is None:
            return "null"
        if v is True:
            return "true"
        if v is False:
            return "false"
        if isinstance(v, int):
            return str(int(v))
        if isinstance(v, float):
            return repr(v) if v == v and v not in (float("inf"), float("-inf")) else "null"
        if isinstance(v, str):
            return '"' + v.translate(escapes) + '"'
        if isinstance(v, dict):
            return "{" + ",".join(to_json(str(k)) + ":" + to_json(x) for k, x in v.items()) + "}"
        if isinstance(v, (list, tuple)):
            return "[" + ",".join(to_json(x) for x in v) + "]"
        return to_json(str(v))

    def write_report():
        try:
            pid = os.getpid()
            base = os.path.join(out_dir, "%d" % pid)
            if not state["compacted"]:
                # The fast path, for the common case (no chdir, str paths and modes): two
                # joins at C speed instead of a Python loop over every open; repro folds them.
                try:
                    paths = "\0".join([e[0] for e in events])
                    modes = "\0".join([e[1] for e in events])
                except TypeError:
                    paths = None
                if paths is not None:
                    with open(base + ".modes.tmp", "w", encoding="utf-8") as f:
                        f.write(modes)
                    with open(base + ".paths.tmp", "w", encoding="utf-8", errors="surrogateescape") as f:
                        f.write(paths)
                    os.replace(base + ".modes.tmp", base + ".modes")
                    os.replace(base + ".paths.tmp", base + ".paths")
                    del events[:]
            compact()
            files = state["compacted"]
            lines = []
            skipped = 0
            # What the interpreter and installed packages read is not the script's input.
            ignored = tuple(sorted({sys.prefix + "/", sys.base_prefix + "/", sys.exec_prefix + "/", here + "/"}))
            ignored += ("/proc/", "/sys/", "/dev/", "/usr/lib/", "/usr/share/", "/lib/", "/etc/")
            for p, (first, last, write, read, written_first) in files.items():
                if p.startswith(ignored) or "/site-packages/" in p or "/__pycache__/" in p:
                    continue
                if "\n" in p or "\t" in p:
                    skipped += 1
                    continue
                # The mode lists the first kind of access first: a file the script wrote and then
                # read back ("wr") is its own product, not an input.
                if written_first:
                    mode = "wr" if read else "w"
                else:
                    mode = "rw" if write else "r"
                lines.append("%d\t%d\t%s\t%s\n" % (first, last, mode, p))
            with open(base + ".files.tmp", "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write("".join(lines))
            os.replace(base + ".files.tmp", base + ".files")
            report = {
                "pid": pid,
                "ppid": os.getppid(),
                "program": os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "",
                "rank": os.environ.get("RANK"),
                "local_rank": os.environ.get("LOCAL_RANK"),
                "world_size": os.environ.get("WORLD_SIZE"),
                "cwd": state["cwd"],
                "prefixes": sorted({sys.prefix, sys.base_prefix, sys.exec_prefix}),
                "seeds": seeds,
                "dataloaders": loaders,
                "frameworks": {},
                "modules": {},
                "exception": state.get("exception"),
                "skipped_paths": skipped,
                "errors": errors,
            }
            # Modules first: reading the thread pools imports threadpoolctl, which the
            # script did not use.
            try:
                report["modules"] = modules()
            except Exception as e:
                errors.append("modules: %r" % (e,))
            try:
                report["frameworks"] = frameworks()
            except Exception as e:
                errors.append("frameworks: %r" % (e,))
            with open(base + ".json.tmp", "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write(to_json(report))
            os.replace(base + ".json.tmp", base + ".json")
        except Exception:
            pass

    try:
        import atexit

        sys.addaudithook(audit)
        sys.meta_path.insert(0, Finder)
        previous = sys.excepthook
        sys.excepthook = on_exception
        for name, fn in patchers.items():
            m = sys.modules.get(name)
            if m is not None:
                fn(m)
        atexit.register(write_report)
    except Exception as e:
        errors.append("installing the probe: %r" % (e,))


def _repro_chain():
    # An environment may have its own sitecustomize (conda and Debian's Python do): run it
    # as if this one were not there, and let its errors surface as they would have. The
    # frozen importlib is already loaded; `importlib.util` would cost milliseconds.
    bootstrap = sys.modules["_frozen_importlib"]
    external = sys.modules["_frozen_importlib_external"]
    here = os.path.dirname(os.path.abspath(__file__))
    paths = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = external.PathFinder.find_spec("sitecustomize", paths)
    if spec is None or spec.loader is None or os.path.abspath(spec.origin or "") == os.path.abspath(__file__):
        return
    module = bootstrap.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


try:
    _repro_probe()
except Exception:
    pass
_repro_chain()
