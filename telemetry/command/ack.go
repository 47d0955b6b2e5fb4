package command

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"

	"papscan/telemetry"
)

// SignAck signs an ack with a fleet receiver's key: it sets a.KeyID and
// a.Sig (Ed25519 over a.SigningBytes) after the robot, receiver and IDs are
// final.
func SignAck(k SigningKey, a *telemetry.Ack) {
	a.KeyID = k.ID
	a.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(k.Key, a.SigningBytes()))
}

var _ telemetry.FleetVerifier = (*KeyRing)(nil)

// SignReplay signs a replay request with a fleet receiver's key: it sets
// r.KeyID and r.Sig (Ed25519 over r.SigningBytes) after every other field
// is final.
func SignReplay(k SigningKey, r *telemetry.Replay) {
	r.KeyID = k.ID
	r.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(k.Key, r.SigningBytes()))
}

// VerifyReplay checks that r was signed by a key of the ring (the robot's
// trusted receiver keys) and returns that key's ID. An unsigned request,
// an unknown key or a signature over another range, session, robot or
// receiver is refused.
func (r *KeyRing) VerifyReplay(rp telemetry.Replay) (string, error) {
	if r.Len() == 0 {
		return "", errors.New("no receiver keys to check replay requests with")
	}
	if rp.Sig == "" || rp.KeyID == "" {
		return "", errors.New("replay request is not signed (no key_id/sig)")
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(rp.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return "", errors.New("replay sig is not a base64 Ed25519 signature")
	}
	return r.verify(rp.KeyID, rp.SigningBytes(), sig)
}

// VerifyAck checks that a was signed by a key of the ring (the robot's
// trusted receiver keys, agent.mqtt.ack_keys) and returns that key's ID.
// An unsigned ack, an unknown key, or a signature over other IDs, another
// robot or another receiver name is refused.
func (r *KeyRing) VerifyAck(a telemetry.Ack) (string, error) {
	if r.Len() == 0 {
		return "", errors.New("no receiver keys to check acks with")
	}
	if a.Sig == "" || a.KeyID == "" {
		return "", errors.New("ack is not signed (no key_id/sig)")
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(a.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return "", errors.New("ack sig is not a base64 Ed25519 signature")
	}
	return r.verify(a.KeyID, a.SigningBytes(), sig)
}
