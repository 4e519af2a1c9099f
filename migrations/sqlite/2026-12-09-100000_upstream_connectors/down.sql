DROP TABLE upstream_links;
DROP TABLE upstream_domains;
DROP TABLE upstream_connectors;
