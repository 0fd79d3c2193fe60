"""The report's HTML template (Jinja2, autoescaped: every name, output and comment a customer or
an admin typed is shown as text). Kept as a string so the package ships it with no data files."""

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>abvoc weekly evaluation report {{ d.week }}{{ " so far" if d.to_date }}</title>
<style>
body { font-family: "DejaVu Sans", Arial, "WenQuanYi Micro Hei", sans-serif; font-size: 11pt;
  margin: 1.5em; color: #222; overflow-wrap: anywhere; }
h1 { font-size: 18pt; margin-bottom: 0; } h2 { font-size: 14pt; border-bottom: 1px solid #999;
  margin-top: 1.4em; } h3 { font-size: 12pt; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 9pt; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top; }
/* Long unbroken text (a comment of one 2,000-letter word, a 100-letter experiment name in a
   heading) wraps instead of running off the page, and every column keeps a readable width. */
th, td { overflow-wrap: anywhere; min-width: 5em; }
/* ...but a heading breaks only between its words, and a number or an interval never inside
   one (a squeezed column printed 0.000182 and its 9 on the next line). */
th, td.ci { overflow-wrap: normal; } td.num { white-space: nowrap; overflow-wrap: normal; }
th { background: #f0f0f0; } td.num { text-align: right; }
img.plot { width: 100%; max-width: 770px; display: block; margin: 0.4em 0; }
.muted { color: #666; } .flag { color: #b00; font-weight: bold; }
section { page-break-before: always; }
/* A section with nothing to show is one sentence: it does not take a page of its own. */
section.first, section.brief { page-break-before: auto; }
/* Printed: a table's header repeats on each page it runs onto and never stays behind at a
   page's foot; a row, a chart or a list item is never cut in two; a heading stays with what
   it heads. */
thead { display: table-header-group; }
tr, img.plot, li, p.note { break-inside: avoid; }
h2, h3, thead { break-after: avoid; }
code { white-space: pre-wrap; word-break: break-all; }
</style></head><body>
<h1>abvoc weekly evaluation report</h1>
{% if d.to_date %}<p class="flag" id="to-date">Week {{ d.week }} so far: not over yet, so
its figures will still change (its whole report is written once it ends).</p>
<p class="muted">{{ d.since[:10] }} to {{ d.until[:10] }} {{ d.until[11:16] }}, UTC, end excluded;
{% else %}<p class="muted">Week {{ d.week }} ({{ d.since[:10] }} to {{ d.until[:10] }}, UTC, end
excluded); {% endif %}
compared with {{ d.previous_week }}. Generated {{ d.generated_at }}.</p>
<ul>
<li>{{ count(d.with_traffic, "experiment") }} with traffic this week</li>
{% if d.no_traffic %}<li class="flag">{{ count(d.no_traffic|length, "experiment") }} running, no
traffic this week</li>{% endif %}
<li>{{ count(d.voc.total, "correction") }} from customers</li>
<li>{{ count(d.relabel.labeled, "item") }} relabeled,
{{ d.relabel.open_at_end }} still unlabeled {{ "now" if d.to_date else "at the week's end" }}</li>
</ul>

<section class="first" id="experiments"><h2>1. Experiment results and decisions</h2>
{% if d.no_traffic %}<p id="no-traffic"><span class="flag">Running, no traffic this week:</span>
{% for x in d.no_traffic %}<bdi>{{ x.name }}</bdi>
<span class="muted">(#{{ x.id }})</span>{{ ", " if not loop.last }}{% endfor %}.</p>{% endif %}
{% if d.failed %}<p id="failed"><span class="flag">Results that could not be computed:</span>
{% for x in d.failed %}<bdi>{{ x.name }}</bdi>
<span class="muted">(#{{ x.id }}: {{ x.reason }})</span>{{ ", " if not loop.last }}
{%- endfor %}.</p>{% endif %}
{% for e in d.experiments %}
<h3><bdi>{{ e.name }}</bdi> <span class="muted">(#{{ e.id }}, {{ e.status }})</span></h3>
<p>Decision: <b>{{ e.decision.action.replace("_", " ") }}</b>
{% if e.decision.arm %} &mdash; arm <bdi>{{ e.decision.arm }}</bdi>{% endif %}
{% if not e.trustworthy %}<span class="flag">untrustworthy (sample ratio mismatch)</span>
{% endif %}</p>
<ul>{% for r in e.decision.reasons %}<li><bdi>{{ r }}</bdi></li>{% endfor %}</ul>
{% if plots.results[e.id] %}
<img class="plot" alt="{{ e.primary_metric }} per variant" src="{{ plots.results[e.id] }}">
{% endif %}
{% for n in plots.notes[e.id] %}<p class="muted note"><bdi>{{ n }}</bdi></p>{% endfor %}
{% if e.figures %}<table><thead><tr><th>variant</th><th>predictions</th><th>correction rate</th>
<th>error rate</th><th>latency p95 ms</th></tr></thead><tbody>
{% for v, f in e.figures.items() %}<tr><td><bdi>{{ v }}</bdi></td>
<td class="num">{{ f.predictions }}</td>
<td class="num">{{ pct(f.correction_rate) }}</td><td class="num">{{ pct(f.error_rate) }}</td>
<td class="num">{{ num(f.latency_p95_ms) }}</td></tr>{% endfor %}</tbody></table>{% endif %}
<table><thead><tr><th>treatment</th><th>metric</th><th>difference</th><th>95% CI</th>
<th>p (Holm)</th><th>verdict</th></tr></thead><tbody>
{% for c in e.comparisons %}<tr><td><bdi>{{ c.treatment }}</bdi></td><td>{{ c.metric }}</td>
<td class="num">{{ num(c.difference) }}</td><td class="ci">{{ interval(c.ci_low, c.ci_high) }}</td>
<td class="num">{{ num(c.p_holm) }}</td><td>{{ verdict(c) }}</td></tr>{% endfor %}</tbody>
</table>
{% if e.analysis_unit_note %}<p class="muted">Note: {{ e.analysis_unit_note }}.</p>{% endif %}
{% if e.several_arms_note %}<p class="muted">Note: {{ e.several_arms_note }}.</p>{% endif %}
{% else %}<p class="muted">No experiment had traffic this week or the week before.</p>
{% endfor %}
</section>

<section id="offline-online"{{ brief(not plots.divergence.values()|select|list) }}>
<h2>2. Offline vs online</h2>
{% for e in d.experiments %}
<h3><bdi>{{ e.name }}</bdi></h3>
{% for src in plots.divergence[e.id] %}
<img class="plot" alt="offline against online" src="{{ src }}">
{% else %}<p class="muted">Nothing to compare: no online traffic this week and no offline
results.</p>{% endfor %}
{% if e.findings %}<ol>{% for f in e.findings %}
<li>[{{ f.kind }}] <bdi>{{ f.explanation }}</bdi></li>
{% endfor %}</ol>{% elif plots.divergence[e.id] %}<p class="muted">No divergence found.</p>
{% endif %}
{% if plots.stages[e.id] %}
<img class="plot" alt="wrong answers by the stage blamed" src="{{ plots.stages[e.id] }}">
{% endif %}
{% else %}<p class="muted">No experiment to compare.</p>{% endfor %}
</section>

<section id="voc"{{ brief(not plots.voc_candidate) }}><h2>3. Voice of the customer</h2>
<p>{{ count(d.voc.total, "correction") }} this week.</p>
{% if plots.voc_candidate %}
<img class="plot" alt="corrections by candidate" src="{{ plots.voc_candidate }}">
{% endif %}{% if plots.voc_slice %}
<img class="plot" alt="corrections by slice" src="{{ plots.voc_slice }}">
{% endif %}
{% if d.voc.examples %}<table><thead><tr><th>when</th><th>candidate / slice</th><th>output</th>
<th>correction</th><th>rating</th><th>comment</th></tr></thead><tbody>
{% for x in d.voc.examples %}<tr><td>{{ x.at[:16].replace('T', ' ') }}</td>
<td><bdi>{{ x.candidate }}</bdi> / <bdi>{{ x.slice }}</bdi></td>
<td><code>{{ x.output }}</code></td><td><code>{{ answer(x.corrected_output) }}</code></td>
<td>{{ x.rating if x.rating is not none else "" }}</td>
<td><bdi>{{ x.comment or "" }}</bdi></td></tr>
{% endfor %}</tbody></table>{% endif %}
</section>

<section id="relabeling"{{ brief(not plots.relabel) }}><h2>4. Relabeling throughput</h2>
<p>{{ d.relabel.queued }} queued, {{ d.relabel.labeled }} labeled by
{{ count(d.relabel.annotators, "annotator") }}{% if d.relabel.copied %} (and
{{ d.relabel.copied }} copied to stage queues from verified labels){% endif %};
{{ d.relabel.open_at_end }} still unlabeled
{{ "now" if d.to_date else "at the week's end" }} (open, leased, in review or flagged).</p>
{% if plots.relabel %}
<img class="plot" alt="relabeling per day" src="{{ plots.relabel }}">
{% endif %}
</section>

<section id="trends"{{ brief(not d.experiments) }}><h2>5. Week over week</h2>
{% for e in d.experiments %}
<h3><bdi>{{ e.name }}</bdi></h3>
{% if plots.trends[e.id] %}
<img class="plot" alt="this week against last week" src="{{ plots.trends[e.id] }}">
{% else %}<p class="muted">No {{ e.primary_metric }} in either week to compare.</p>{% endif %}
<table><thead><tr><th>variant</th><th>metric</th><th>{{ d.previous_week }}</th>
<th>{{ d.week }}</th><th>change</th></tr></thead><tbody>
{% for t in e.trends %}<tr><td><bdi>{{ t.variant }}</bdi></td>
<td>{% if t.primary %}<b>{{ t.metric }}</b>
(primary){% else %}{{ t.metric }}{% endif %}</td>
<td class="num">{{ num(t.previous) }}</td><td class="num">{{ num(t.current) }}</td>
<td class="num">{{ num(t.change) }}</td></tr>{% endfor %}</tbody></table>
{% else %}<p class="muted">No experiment to compare.</p>{% endfor %}
</section>
</body></html>
"""
