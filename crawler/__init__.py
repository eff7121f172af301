"""The web side of ufarchive: Scrapy spider, extraction, scheduling; may import `archive`."""
