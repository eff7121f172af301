"""`python -m crawler` is `ufarchive`."""

from crawler.cli import main

main()
