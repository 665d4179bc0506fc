"""The cockpit's Textual screens: the App (:mod:`screens.app`), the wizard's steps, the
dashboard, the runs list, export and help. Styles live in ``.tcss`` files beside them,
with selectors prefixed by the screen class. The engine is reached through
:mod:`cockpit.app.runs` and :mod:`cockpit.app.wizard` only.
"""
