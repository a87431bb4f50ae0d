"""``p2r-eval view``: a static site to look at runs, their samples and the frames the model saw.

:func:`p2r_eval.report.view.site.build_site` writes it; :mod:`p2r_eval.cli.view` is the
command.
"""
