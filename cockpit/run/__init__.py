"""A run directory and everything that reads or starts one: its layout and status, the typed
events, the reducer both viewers fold them with, the launcher, the runs registry, and the words
and lines the plain viewers print.
"""
