"""The application layer: what every front end asks the engine.

The CLI (:mod:`cockpit.cli`), the Textual screens (``screens/``) and the plain wizard
(:mod:`cockpit.cli.plain_wizard`) translate a person's input into these calls and render
what comes back; none of them builds a config, counts steps, decides a precision or
starts a process itself.

* :mod:`cockpit.app.config` - a :class:`~cockpit.app.config.TrainRequest` (preset, config
  file, key=value choices) into the one resolved :class:`~cockpit.config.TrainConfig`;
* :mod:`cockpit.app.runs` - start, stop, resume and list runs; the export commands;
* :mod:`cockpit.app.wizard` - the wizard's questions: hardware, models, memory plan, data
  report, the config of its answers and the run's estimate.

Slow engine parts (torch, tokenizers) are imported inside the functions, so a front end
that imports this package still starts fast.
"""
