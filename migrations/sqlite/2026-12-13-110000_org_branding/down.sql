DROP TABLE org_branding;
