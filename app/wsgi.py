"""WSGI entry point for a WSGI server you run yourself, e.g.
`granian --interface wsgi --workers 4 app.wsgi:app` (settings from the environment).

`abvoc serve --workers 4` does the same with abvoc's own settings. Under a server you run
yourself, set PROMETHEUS_MULTIPROC_DIR (an empty folder) so /metrics counts every worker, and
ABVOC_SECRET_KEY unless every worker shares the data folder's key file.
"""

from app import create_app

app = create_app()
