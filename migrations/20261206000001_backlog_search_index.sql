-- The global search finds backlog items by title or key through trigrams, as it finds
-- environments by name and purpose (environment_search_idx).
CREATE INDEX backlog_item_search_idx ON backlog_item
    USING gin ((title || ' ' || coalesce(key, '')) gin_trgm_ops);
