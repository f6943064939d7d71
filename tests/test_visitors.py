"""Who is visiting: the fast screens give crawlerdetect's and the device patterns' answers."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest
from crawlerdetect import CrawlerDetect
from hypothesis import given
from hypothesis import strategies as st

from acquisition import visitors

# People's browsers (in-app ones with their device, locale and build), phones whose names hold
# a crawler word, and real crawlers.
USER_AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 Instagram 312.0.0.37.103 (iPhone14,5; iOS 17_1_2; en_US; en; "
    "scale=3.00; 1170x2532; 548339486)",
    "Mozilla/5.0 (Linux; Android 13; SM-S911B Build/TP1A.220624.014; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.163 Mobile Safari/537.36 "
    "[FB_IAB/FB4A;FBAV/441.0.0.33.113;]",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 [FBAN/FBIOS;FBDV/iPhone13,2;FBMD/iPhone;FBSN/iOS;FBSV/16.6;FBSS/3;"
    "FBID/phone;FBLC/en_US;FBOP/5]",
    "Mozilla/5.0 (Linux; Android 12; 2201116SG Build/SKQ1.211006.001; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.66 Mobile Safari/537.36 "
    "trill_2023108020 JsSdk/1.0 NetType/WIFI Channel/googleplay AppName/musical_ly",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 9; SM-G960F) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (Linux; arm_64; Android 13; SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/118.0.5993.111 YaBrowser/23.11.3.111.00 SA/3 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.1 YaBrowser/23.11.0.1432.10 YaApp_iOS/23.11 Mobile/15E148 Safari/604.1 "
    "YandexSearch/23.11",
    "Mozilla/5.0 (Linux; Android 12; CUBOT X50) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/110.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 11; M bot 51) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/110.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/120.0.6099.71 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
    "+http://www.google.com/bot.html)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; "
    "+https://openai.com/gptbot)",
    "curl/8.4.0",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "Wget/1.21.3",
    "HeadlessChrome/120.0.0.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/120.0.0.0 Safari/537.36",
]


@pytest.mark.parametrize("user_agent", USER_AGENTS)
def test_crawlers_are_what_crawlerdetect_says(user_agent: str) -> None:
    assert visitors._CRAWLER_HINT is not None  # the RE2 screen is in use
    assert visitors._is_crawler(user_agent) == CrawlerDetect().isCrawler(user_agent)


def test_people_stay_people_and_crawlers_are_bots() -> None:
    kinds = [visitors.classify(ua).kind for ua in USER_AGENTS]
    assert kinds[:14] == ["human"] * 14
    assert set(kinds[14:]) == {"bot"}
    devices = [visitors.device(ua) for ua in USER_AGENTS[:10]]
    assert devices == ["mobile"] * 6 + ["tablet"] * 2 + ["desktop"] * 2


def _device_by_patterns(user_agent: str) -> str:
    if visitors._TABLET.search(user_agent):
        return "tablet"
    return "mobile" if visitors._MOBILE.search(user_agent) else "desktop"


WORDS = [
    "Mozilla/5.0",
    "(Linux;",
    "Android",
    "ANDROID",
    "android13",
    "Mobile",
    "mobi",
    "MOBILE",
    "iPhone",
    "iPad",
    "ipod",
    "Tablet",
    "Kindle",
    "Silk",
    "PlayBook",
    "Windows",
    "Phone",
    "Windows Phone",
    "Opera",
    "Mini",
    "Opera Mini",
    "IEMobile",
    "Safari/604.1",
    "x",
    ";",
    ")",
]


@given(st.lists(st.sampled_from(WORDS), max_size=8), st.sampled_from([" ", "", "; ", "/"]))
def test_the_device_is_what_the_patterns_say(words: list[str], separator: str) -> None:
    user_agent = separator.join(words)
    assert visitors.device(user_agent) == _device_by_patterns(user_agent)


@given(st.text(max_size=60))
def test_the_device_of_any_string_is_what_the_patterns_say(user_agent: str) -> None:
    assert visitors.device(user_agent) == _device_by_patterns(user_agent)


NETWORKS = (ip_network("10.0.0.0/8"), ip_network("192.168.1.0/24"), ip_network("fd00::/8"))


def _within_by_ipaddress(address: str) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in NETWORKS)


@given(
    st.one_of(
        st.ip_addresses().map(str),
        st.ip_addresses(network="10.0.0.0/8").map(str),
        st.ip_addresses(network="192.168.0.0/23").map(str),
        st.from_regex(r"\A[0-9]{1,4}(\.[0-9]{1,4}){2,4}\Z"),
        st.text(alphabet="0123456789.:abcdefx ", max_size=20),
    )
)
def test_a_proxy_is_trusted_exactly_where_ipaddress_says(address: str) -> None:
    assert visitors._within(address, NETWORKS) == _within_by_ipaddress(address)
