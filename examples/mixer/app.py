"""The demo's search mixer as a standalone service, for reading and for running.

    pip install -e '.[demo]'
    uvicorn examples.mixer.app:app --port 8000        # from the repository root
    curl 'http://127.0.0.1:8000/search?q=red+running+shoes&tenant=globex&region=ap-south-1&user=10'

Events go to stdout as JSON lines unless WIDEEVENTS_SINK says otherwise
(``WIDEEVENTS_SINK=file:events.jsonl``, ``honeycomb`` with HONEYCOMB_API_KEY, ``otlp``).
The service code lives in ``wideevents/_demo/mixer.py`` so that ``wideevents demo`` can run
it once installed; this file only builds the app.
"""

from __future__ import annotations

import os

from wideevents._demo.mixer import Incidents, Mixer, create_app

# Set MIXER_INCIDENTS=0 to serve without the injected incidents.
_incidents = Incidents() if os.environ.get("MIXER_INCIDENTS", "1") != "0" else Incidents(
    slow_vector_region=None, zero_feature_tenant=None, canary_nonfinite=False)

app = create_app(Mixer(seed=int(os.environ.get("MIXER_SEED", "7")), incidents=_incidents))
