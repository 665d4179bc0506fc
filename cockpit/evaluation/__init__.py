"""After training: held-out evaluation against the base model, preference accuracy, general
ability (lm-eval), text metrics, and comparing runs.
"""
