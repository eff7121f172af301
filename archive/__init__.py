"""The stored side of ufarchive: models, migrations, dedup, search, export, web UI.

Never imports `crawler` or Scrapy, so the web UI and exports run without the crawler.
"""
