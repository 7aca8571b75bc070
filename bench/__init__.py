"""`make bench`: the figures issues ask for, printed as a table."""
