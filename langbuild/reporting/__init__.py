"""Everything the report step and ``langbuild export`` show: plots, the Markdown/HTML report and the model card.

The report is built once as a list of structured blocks (:mod:`.document`) and rendered twice, to
Markdown and to self-contained HTML, so the two can never disagree and no Markdown library is needed.
"""
