-- The unfiltered list (`GET /api/v1/environments`, newest first): without an index in its
-- order, each page sorted every environment (100,000 rows: about 20 requests/s on 2 cores).
CREATE INDEX environment_created_idx ON environment (created_at DESC, id DESC);
