"""One module a part of the UI, each with one `router` holding its pages and its /api/
endpoints: search (/, /api/search, /api/export), article (/articles/..., the archived
page view, versions, diff), browse (/browse, /sites, /changes, /changes.atom, /api/sites,
/api/runs), collections (/collections), apidocs (/api/docs)."""
