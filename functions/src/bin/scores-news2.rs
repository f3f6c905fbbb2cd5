//! `scores-news2`: `POST /scores/news2` (`vitalwire::clinical::http::score_news2`).
vitalwire_functions::lambda_function!(SCORES_NEWS2);
