"""The plugin where Pelican looks for installed plugins (its `pelican.plugins`
namespace): `PLUGINS = ["s3_publish"]` loads it by its short name, and a site
with no PLUGINS list loads it with every other installed plugin. It stays inert
until an S3_PUBLISH_ setting is present. The code lives in `pelican_s3_publish`.
"""

from pelican_s3_publish.plugin import register

__all__ = ["register"]
