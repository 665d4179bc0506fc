"""The trainer process: the recipe on HF Trainer + PEFT (or TRL for preference stages), its
callback into the event log, the speed-ups, the checklist's detectors and their advice.
"""
