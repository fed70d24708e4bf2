"""The s3 test server (fixture `s3_server`): to be written."""
