DROP TABLE ip_blocks;
DROP TABLE lockouts;
