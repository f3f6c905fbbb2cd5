//! `inbox-continue`: the rest of an inbox file too large for one run, from `InboxFilesQueue` (`vitalwire::ingest::inbox::handle_continued`).
vitalwire_functions::lambda_function!(INBOX_CONTINUE);
