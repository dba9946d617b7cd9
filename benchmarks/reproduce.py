"""Reproduce the published few-shot tables: the command line of :mod:`fewshot.reproduce` (see its ``cli``)."""

from fewshot.reproduce import main

if __name__ == "__main__":
    main()
