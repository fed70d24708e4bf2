"""The sftp test server (fixture `sftp_server`): to be written."""
