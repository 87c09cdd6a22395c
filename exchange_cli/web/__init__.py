"""The one HTTP client: every request the tool sends itself (a registry's API, its token server, a rootfs, a
manifest or an envelope fetched or verified by URL) goes through a `transport.Transport` on a
`transport.new_session()`.

- deadlines.py: per-read timeouts and an overall deadline per transfer (a trickling server is cut off);
- transport.py: which URLs may be contacted, redirects followed and checked hop by hop, credentials bound
  to their origin (never ~/.netrc's, never across a redirect);
- retries.py: which failures are retried (5xx, 429, a dropped connection), how often, how far apart;
- masking.py: the secrets a client holds, hidden from every message and log line.

Sizes are capped by the readers (bounded.py). The bucket (google-cloud-storage) and the Docker engine
(docker) use their libraries' own HTTP sessions.
"""

from __future__ import annotations
