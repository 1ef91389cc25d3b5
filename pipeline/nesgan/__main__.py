"""`python -m nesgan …` (also what `torchrun -m nesgan train …` runs)."""

from nesgan.cli import main

if __name__ == "__main__":
    main()
