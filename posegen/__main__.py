"""``python -m posegen ...`` runs the ``posegen`` command (the same as the console script)."""

from posegen_core.cli import main

if __name__ == "__main__":
    main()
