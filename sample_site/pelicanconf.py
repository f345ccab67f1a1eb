"""Settings for building the sample site locally (publishing off)."""

AUTHOR = "Sample Author"
SITENAME = "pelican-s3-publish sample"
SITEURL = ""
FEED_DOMAIN = "https://sample.example"
PATH = "content"
TIMEZONE = "UTC"
DEFAULT_LANG = "en"
RELATIVE_URLS = True
DEFAULT_PAGINATION = 5

STATIC_PATHS = ["images", "downloads", "extra"]
EXTRA_PATH_METADATA = {
    "extra/robots.txt": {"path": "robots.txt"},
    "extra/security.txt": {"path": ".well-known/security.txt"},
}

FEED_ALL_ATOM = "feeds/all.atom.xml"
FEED_ALL_RSS = "feeds/all.rss.xml"
CATEGORY_FEED_ATOM = "feeds/{slug}.atom.xml"
TAG_FEED_RSS = "feeds/tag-{slug}.rss.xml"
TRANSLATION_FEED_ATOM = None
AUTHOR_FEED_ATOM = None
AUTHOR_FEED_RSS = None

PLUGINS = ["s3_publish"]
