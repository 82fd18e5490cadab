"""The handlers, one module an area, and the table (table.py) that gives
each call the policy says the kernel serves its handler.  Nothing below
imports from here."""
