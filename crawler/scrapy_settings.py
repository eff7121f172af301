"""Scrapy's project settings (scrapy.cfg points here), so `scrapy crawl news -a site=NAME` works."""

from __future__ import annotations

from archive.settings import load_settings
from crawler.crawlsettings import scrapy_settings

globals().update(scrapy_settings(load_settings()))
