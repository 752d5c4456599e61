-- EKS's Kubernetes version calendar beyond the table shipped with Slipway: admins' corrections
-- (`admin`, with who and why) and what EKS answers to DescribeClusterVersions (`eks`), which
-- wins over both.
CREATE TABLE kubernetes_version (
    minor         integer NOT NULL CHECK (minor BETWEEN 20 AND 99),
    source        text NOT NULL CHECK (source IN ('admin', 'eks')),
    standard_ends date NOT NULL,
    extended_ends date NOT NULL CHECK (extended_ends >= standard_ends),
    note          text NOT NULL CHECK (length(note) BETWEEN 1 AND 300),
    changed_by    uuid REFERENCES app_user (id) ON DELETE SET NULL,
    changed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (minor, source)
);
