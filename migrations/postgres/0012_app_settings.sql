-- Per-app settings of `http` targets (the app gateway): the header names an app reads the
-- identity from, as JSON. Identical in both dialects.
ALTER TABLE targets ADD COLUMN app TEXT NOT NULL DEFAULT '{}';
