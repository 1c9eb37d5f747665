"""``python -m posegen``: the ``posegen`` command line as a runnable module, so that torch's launcher can start it on
every process: ``torchrun --nproc-per-node 2 -m posegen run ...`` (docs/DISTRIBUTED.md). The library itself is
``posegen_core``."""
