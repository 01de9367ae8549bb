from tests.harness import Reply


def test_chat_through_fake_upstream(proxy, upstream):
    upstream.script("smoke-a", Reply(text="hello from upstream"))
    client = proxy.openai()
    resp = client.chat.completions.create(model="fake/smoke-a", messages=[{"role": "user", "content": "hi"}])
    assert resp.choices[0].message.content == "hello from upstream"
