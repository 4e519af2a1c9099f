DROP TABLE ip_allow_list;
