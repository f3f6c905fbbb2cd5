//! The one way of building AWS clients honours the SDK's standard endpoint variables, and S3
//! switches to path-style addressing behind an endpoint override (an emulator serves buckets
//! on one host; virtual-host style would ask DNS for `<bucket>.127.0.0.1`).

use aws_sdk_s3::primitives::ByteStream;
use vitalwire_tests::aws_config;

#[tokio::test]
async fn s3_client_reaches_the_emulator_with_path_style_urls() {
    let config = aws_config().await;
    assert!(config.endpoint_url().is_some_and(|u| u.starts_with("http://127.0.0.1:")), "AWS_ENDPOINT_URL is honoured");
    let s3 = vitalwire::platform::aws::s3(&config);
    let bucket = format!("vitalwire-test-{}", std::process::id());
    s3.create_bucket().bucket(&bucket).send().await.expect("create bucket");
    s3.put_object().bucket(&bucket).key("inbox/a.json").body(ByteStream::from_static(b"{}")).send().await.expect("put");
    let got = s3.get_object().bucket(&bucket).key("inbox/a.json").send().await.expect("get");
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), b"{}");
}
