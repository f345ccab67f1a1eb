"""pelican_s3_publish: publish a Pelican site to S3, sending only what changed.

Add "pelican_s3_publish" to PLUGINS and set S3_PUBLISH_BUCKET.
"""

from .headers import CACHE_PRESET
from .plugin import register
from .settings import DEFAULT_EXCLUDE

__version__ = "0.1.0"

__all__ = ["CACHE_PRESET", "DEFAULT_EXCLUDE", "__version__", "register"]
