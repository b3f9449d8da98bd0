"""repro's notebook runner (`repro run nb.ipynb`): executes NOTEBOOK with nbclient in this
interpreter and writes the executed copy to EXECUTED.

Usage: python nbclient_driver.py NOTEBOOK EXECUTED KERNELS_DIR

repro embeds this file and writes it into the run's private folder when the run starts; the
recorded command stays `nb.ipynb`, so a replay runs it again the same way.
"""

import json
import os
import sys


def main():
    src, dest, kernels = sys.argv[1:4]
    try:
        import nbformat
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import KernelManager
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError
    except ImportError as e:
        print(f"repro: cannot run {src}: {e.name} is not installed in {sys.executable}; "
              "pip install nbclient ipykernel there", file=sys.stderr)
        return 2

    # The kernel is this very interpreter (the one repro recorded), whatever kernel the
    # notebook's metadata names and whatever "python3" kernel the user has installed.
    spec = os.path.join(kernels, "repro-python")
    os.makedirs(spec, exist_ok=True)
    with open(os.path.join(spec, "kernel.json"), "w") as f:
        json.dump({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                   "display_name": "Python (repro)", "language": "python"}, f)
    km = KernelManager(kernel_name="repro-python", kernel_spec_manager=KernelSpecManager(kernel_dirs=[kernels]))

    nb = nbformat.read(src, as_version=4)
    # record_timing=False: nbclient would otherwise stamp every cell with the times it ran
    # (metadata.execution: iopub.status.busy, shell.execute_reply …), so the executed
    # notebook would differ on every run and no replay could be identical. Without them the
    # executed notebook is a function of the code, the data and the seed, and replay can
    # compare it byte for byte like any other output.
    client = NotebookClient(nb, km=km, timeout=None, record_timing=False,
                            resources={"metadata": {"path": os.path.dirname(os.path.abspath(src))}})
    failed = None
    try:
        client.execute()
    except CellExecutionError as e:
        failed = e
    # Written even when a cell failed: the traceback is in it, where the user will look.
    tmp = dest + ".repro-tmp"
    nbformat.write(nb, tmp)
    os.replace(tmp, dest)
    if failed is not None:
        print(str(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
