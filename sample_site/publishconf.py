"""Settings for publishing the sample site: the bucket comes from the environment.

S3_PUBLISH_BUCKET=my-bucket pelican content -s publishconf.py

Publishing settings live here, not in pelicanconf.py: `pelican content` and
`pelican --listen` while writing use pelicanconf.py and publish nothing.
"""

import os
import sys

sys.path.append(os.path.dirname(os.path.abspath(__file__)))
from pelicanconf import *  # noqa: F403

DELETE_OUTPUT_DIRECTORY = True

S3_PUBLISH_BUCKET = os.environ.get("S3_PUBLISH_BUCKET") or sys.exit(
    "publishconf.py publishes to the bucket named in S3_PUBLISH_BUCKET, which is not set: "
    "S3_PUBLISH_BUCKET=my-bucket pelican content -s publishconf.py"
)
S3_PUBLISH_ENDPOINT_URL = os.environ.get("S3_PUBLISH_ENDPOINT_URL") or None
S3_PUBLISH_HEADERS = [
    ("*.html", {"Cache-Control": "public, max-age=0, must-revalidate"}),
    ("theme/", {"Cache-Control": "public, max-age=86400"}),
]
