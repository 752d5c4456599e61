-- Notifications about more than environments (a blueprint waiting for review, its verdict) link
-- to the page they are about. NULL for environment notifications, whose page follows from
-- environment_id.
ALTER TABLE notification
    ADD COLUMN link text CHECK (link IS NULL OR (link ~ '^/[^/\\]' AND length(link) <= 500));
