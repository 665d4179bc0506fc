"""The ``llm-cockpit`` command line: each module registers its sub-commands and only translates
arguments into calls of the application layer (:mod:`cockpit.app`) and the engine, and results into lines.
"""
