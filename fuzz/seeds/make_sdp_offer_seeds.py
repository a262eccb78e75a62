# Writes fuzz/seeds/sdp_offer/ (run from the repository root): hand-made SDPs of desk
# phones, softphones and browsers, and every offer of /work/shared/conformance/cases.json
# whose case expects ok. Format: one option byte (see control/src/fuzzing.rs) + the SDP.
# Seeds relayd answers with an error are named *.expect-error.
import re
import json, os, base64
D='fuzz/seeds/sdp_offer'
def crlf(s): return s.strip('\n').replace('\n','\r\n')+'\r\n'
def w(name, opts, sdp):
    open(os.path.join(D,name),'wb').write(bytes([opts])+sdp.encode())
k1='WVNfX19zdHJvbmdfa2V5X2Zvcl90ZXN0c19vbmx5'  # 30 bytes b64 (40 chars)
k256='8AbZePWwsKhLGX3GlXA+yHYPQ3cgraer/9DkFJYCOPZZy3o9wC0NIbIFYZfyHw=='
gcm128='AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw=='
polycom=crlf("""v=0
o=- 1700000001 1700000001 IN IP4 198.51.100.20
s=Polycom IP Phone
c=IN IP4 198.51.100.20
t=0 0
a=sendrecv
m=audio 2222 RTP/AVP 9 102 0 8 18 127
a=rtpmap:9 G722/8000
a=rtpmap:102 G7221/16000
a=fmtp:102 bitrate=32000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:127 telephone-event/8000
a=fmtp:127 0-15
""")
w('deskphone-polycom', 0, polycom)
yealink=crlf("""v=0
o=- 20011 20011 IN IP4 10.1.2.33
s=SDP data
c=IN IP4 10.1.2.33
t=0 0
m=audio 11780 RTP/AVP 0 8 18 9 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:9 G722/8000
a=fmtp:101 0-15
a=rtpmap:101 telephone-event/8000
a=ptime:20
a=sendrecv
""")
w('deskphone-yealink', 1, yealink)
# the crash of issue 9: colon-less payload attributes (Kamailio passes them through)
w('deskphone-colonless-rtpmap', 0, yealink.replace('a=ptime:20\r\n','a=rtpmap\r\na=fmtp\r\na=rtcp-fb\r\na=ptime:20\r\n'))
w('deskphone-colonless-rtpmap-strip', 64|16, yealink.replace('a=rtpmap:8 PCMA/8000\r\n','a=rtpmap\r\na=rtpmap:8 PCMA/8000\r\n'))
w('deskphone-hold', 16, yealink.replace('c=IN IP4 10.1.2.33','c=IN IP4 0.0.0.0').replace('a=sendrecv','a=sendonly'))
softphone=crlf(f"""v=0
o=Zoiper 0 5 IN IP4 192.168.1.50
s=Z
c=IN IP4 192.168.1.50
t=0 0
m=audio 8000 RTP/SAVP 106 9 98 101 0 8 3
a=rtpmap:106 opus/48000/2
a=fmtp:106 sprop-maxcapturerate=16000; minptime=20; useinbandfec=1
a=rtpmap:98 telephone-event/48000
a=fmtp:98 0-16
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{k1}
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{k1}
a=crypto:3 AES_256_CM_HMAC_SHA1_80 inline:{k256}|2^31
a=sendrecv
a=rtcp-mux
""")
w('softphone-zoiper-sdes', 0, softphone)
w('softphone-sdes-to-plain', 4|8, softphone)
linphone=crlf(f"""v=0
o=alice 3062 1537 IN IP4 192.168.0.12
s=Talk
c=IN IP4 192.168.0.12
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
m=audio 7078 RTP/SAVP 96 97 0 8 101
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:101 telephone-event/8000
a=crypto:1 AEAD_AES_128_GCM inline:{gcm128}
a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{k1}
a=rtcp:7079
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
m=video 9078 RTP/SAVP 96 97
a=rtpmap:96 VP8/90000
a=rtpmap:97 H264/90000
a=fmtp:97 profile-level-id=42801F
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{k1}
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:96 nack pli
a=rtcp-fb:97 ccm fir
""")
w('softphone-linphone-gcm-video', 128, linphone)
w('softphone-plain-to-sdes', 2|32, polycom)
browser_sdes=crlf(f"""v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=msid-semantic: WMS lgsCFqt9kN2fVKw5wXHx9aT6PC5cCsYOhkcp
m=audio 54609 RTP/SAVPF 111 103 104 9 0 8 106 105 13 110 112 113 126
c=IN IP4 203.0.113.77
a=rtcp:9 IN IP4 0.0.0.0
a=candidate:2999745851 1 udp 2122260223 192.168.56.1 54609 typ host generation 0 network-id 2
a=candidate:1606961068 1 udp 1686052607 203.0.113.77 54609 typ srflx raddr 10.0.2.15 rport 54609 generation 0
a=ice-ufrag:a9Hg
a=ice-pwd:G8cJkzGxkFu3PU1O8qBsjd2T
a=ice-options:trickle
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{k1}
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=sendrecv
a=msid:lgsCFqt9kN2fVKw5wXHx9aT6PC5cCsYOhkcp 4e3e9c7b-8e45-4c6b-9d1a-3c2a0a0f6a8d
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:103 ISAC/16000
a=rtpmap:104 ISAC/32000
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:106 CN/32000
a=rtpmap:105 CN/16000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=rtpmap:112 telephone-event/32000
a=rtpmap:113 telephone-event/16000
a=rtpmap:126 telephone-event/8000
a=ssrc:3735928559 cname:4TOk42mSjXCkVIa6
a=ssrc:3735928559 msid:lgsCFqt9kN2fVKw5wXHx9aT6PC5cCsYOhkcp 4e3e9c7b
m=video 54609 RTP/SAVPF 96 97 98 99 100 101 102
c=IN IP4 203.0.113.77
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:a9Hg
a=ice-pwd:G8cJkzGxkFu3PU1O8qBsjd2T
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{k1}
a=mid:1
a=extmap:2 urn:ietf:params:rtp-hdrext:toffset
a=sendrecv
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 goog-remb
a=rtcp-fb:96 transport-cc
a=rtcp-fb:96 ccm fir
a=rtcp-fb:96 nack
a=rtcp-fb:96 nack pli
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=rtpmap:98 VP9/90000
a=rtpmap:99 rtx/90000
a=fmtp:99 apt=98
a=rtpmap:100 red/90000
a=rtpmap:101 rtx/90000
a=fmtp:101 apt=100
a=rtpmap:102 ulpfec/90000
a=ssrc-group:FID 2231627014 632943048
a=ssrc:2231627014 cname:4TOk42mSjXCkVIa6
""")
w('browser-webrtc-sdes', 32, browser_sdes)
w('browser-webrtc-sdes-keep-ice', 8, browser_sdes)
dtls=browser_sdes.replace('RTP/SAVPF','UDP/TLS/RTP/SAVPF').replace(f'a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{k1}\r\n','a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F\r\na=setup:actpass\r\n')
# a Chrome offer (DTLS-SRTP, ICE, rtcp-mux); option bit 1 adds a Kamailio rtpp-flags string
w('browser-webrtc-dtls', 32, dtls)
w('browser-webrtc-dtls-rtpp-flags', 33, dtls)
ipv6=crlf("""v=0
o=- 1 1 IN IP6 2001:db8::20
s=-
c=IN IP6 2001:db8::20
t=0 0
m=audio 5004 RTP/AVP 0 101
a=rtpmap:101 telephone-event/8000
m=image 5006 udptl t38
a=T38FaxVersion:0
a=T38MaxBitRate:14400
m=message 2855 TCP/MSRP *
a=path:msrp://2001:db8::20:2855/kjhd37s2s2;tcp
""")
w('ipv6-t38-msrp', 0, ipv6)
# ICE (control/src/ice_sdp.rs): a browser's trickle ICE with a session-level ice-lite,
# candidates of every type and a malformed one (ignored); the relay answers with its own
browser_ice=crlf("""v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=ice-lite
a=ice-options:trickle
m=audio 9 RTP/AVP 111 0 8
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:Ci7n
a=ice-pwd:l9QndxLG6OycZRcQe9zcT95c
a=candidate:661312077 1 udp 2122262783 2001:db8::7 61773 typ host generation 0
a=candidate:2313719679 1 udp 2122194687 198.51.100.54 55343 typ host generation 0
a=candidate:2147022507 1 udp 1685987071 198.51.100.1 14745 typ srflx raddr 198.51.100.54 rport 55343
a=candidate:3345707919 1 tcp 1518214911 198.51.100.54 9 typ host tcptype active
a=candidate:x 1 udp
a=end-of-candidates
a=rtcp-mux
a=sendrecv
a=rtpmap:111 opus/48000/2
""")
w('browser-ice-trickle', 0, browser_ice)
# rtpengine's test SDPs (shared/conformance/cases.json): every offer whose case expects ok
c=json.load(open('/work/shared/conformance/cases.json'))['cases']
n=0
for case in c:
    for s in case['steps']:
        if s.get('cmd')=='offer' and s.get('sdp') and s.get('expect',{}).get('result')=='ok':
            n+=1
            opts = 32 if s.get('params',{}).get('ICE')=='remove' else 0
            w(f"rtpengine-{n:03}-{case['id']}"[:80], opts, s['sdp'])
print(n)
