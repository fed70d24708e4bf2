"""The webdav test server (fixture `webdav_server`): to be written."""
