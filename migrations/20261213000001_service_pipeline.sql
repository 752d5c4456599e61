-- A service's pipeline in the DevOps tool (what people call it there), and where the tool
-- clones the service's repository from.
ALTER TABLE service
    ADD COLUMN pipeline text CHECK (length(pipeline) <= 512),
    ADD COLUMN clone_url text CHECK (length(clone_url) <= 2048);
