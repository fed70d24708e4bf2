"""The ftp test server (fixture `ftp_server`): to be written."""
