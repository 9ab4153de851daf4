"""``python -m lutnav``: what launchers run (``accelerate launch -m lutnav …``, ``torchrun -m lutnav …``)."""

from lutnav.cli import main

if __name__ == "__main__":
    main()
