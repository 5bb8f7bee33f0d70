mod common;

#[tokio::test]
async fn put_then_get() {
    let backend = common::StoreBackendDouble::new("http://127.0.0.1:0");
    let base = common::serve(keel_v2http::router(backend)).await;
    let a = common::request(&base, "PUT", "/v2/keys/nosql/foo", "value=bar").await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(
        a.body,
        "{\"action\":\"set\",\"node\":{\"key\":\"/nosql/foo\",\"value\":\"bar\",\"modifiedIndex\":4,\"createdIndex\":4}}\n"
    );
}
