package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"papscan/telemetry"
	"papscan/telemetry/command"
)

// Exit codes of send.
const (
	exitRefused   = 1 // the robot answered with an error code
	exitUsage     = 2
	exitNoAnswer  = 3 // broker unreachable or no reply within --timeout
	defaultPrefix = telemetry.DefaultTopicPrefix
)

// runKeygen is `papscan-fleet keygen`: a new fleet Ed25519 key pair. The
// private key goes to --out (PEM, mode 0600, never overwritten); the public
// line for the robots' agent.commands.fleet_keys goes to stdout.
func runKeygen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	id := fs.String("id", "", "key ID, e.g. fleet-2026 (1..64 of [A-Za-z0-9._-])")
	out := fs.String("out", "", "private key file to create (PEM, mode 0600; keep it on the fleet side)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *id == "" || *out == "" {
		fmt.Fprintln(stderr, "papscan-fleet keygen: --id and --out are required")
		return exitUsage
	}
	line, err := command.Keygen(*id, *out)
	if err != nil {
		fmt.Fprintf(stderr, "papscan-fleet keygen: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, line)
	fmt.Fprintf(stderr, "private key written to %s; give the line above to every robot:\n  agent:\n    commands:\n      fleet_keys: [%q]\n", *out, line)
	return 0
}

// runSend is `papscan-fleet send`: sign one command with the fleet key,
// publish it on <prefix>/<robot>/cmd, wait for the robot's reply on
// cmd/reply and print it.
func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var brokers list
	fs.Var(&brokers, "broker", "broker URL, repeat for failover")
	robot := fs.String("robot", "", "robot ID (agent.robot_id)")
	keyFile := fs.String("fleet-key", "", "fleet private key (PEM from keygen)")
	args0 := fs.String("args", "", `command arguments as a JSON object, e.g. '{"magazine":"M0001"}'`)
	prefix := fs.String("prefix", defaultPrefix, "topic prefix")
	timeout := fs.Duration("timeout", time.Minute, "how long to wait for the reply")
	clientID := fs.String("client-id", "", "MQTT client ID (default papscan-fleet-send-<random>)")
	user := fs.String("username", "", "MQTT user name")
	pwFile := fs.String("password-file", "", "file holding the MQTT password")
	ca := fs.String("ca", "", "CA certificate (PEM) of the broker")
	cert := fs.String("cert", "", "client certificate (PEM)")
	key := fs.String("key", "", "client key (PEM) of --cert")
	outFile := fs.String("out", "", "fetch: write the fetched file here")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: papscan-fleet send --broker URL --robot ID --fleet-key FILE [flags] TYPE\n\n"+
			"TYPE is one of %s. Prints the reply; exit 0 ok, 1 refused or failed (the reply's code),\n"+
			"2 usage, 3 no reply within --timeout.\n\nFlags:\n", strings.Join(command.Types, ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 || len(brokers) == 0 || *robot == "" || *keyFile == "" {
		fmt.Fprintln(stderr, "papscan-fleet send: want --broker, --robot, --fleet-key and one command TYPE (send -h)")
		return exitUsage
	}
	typ := fs.Arg(0)
	sk, err := command.ReadSigningKeyFile(*keyFile)
	if err != nil {
		fmt.Fprintf(stderr, "papscan-fleet send: --fleet-key: %v\n", err)
		return exitUsage
	}
	var cmdArgs any
	if *args0 != "" {
		raw := json.RawMessage(*args0)
		if !json.Valid(raw) || !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
			fmt.Fprintf(stderr, "papscan-fleet send: --args: want a JSON object, got %q\n", *args0)
			return exitUsage
		}
		cmdArgs = raw
	}
	cmd, err := command.NewCommand(*robot, typ, cmdArgs, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "papscan-fleet send: %v\n", err)
		return exitUsage
	}
	msg, err := command.Sign(sk, cmd)
	if err != nil {
		fmt.Fprintf(stderr, "papscan-fleet send: %v\n", err)
		return exitUsage
	}

	if *clientID == "" {
		*clientID = "papscan-fleet-send-" + command.NewNonce()[:8]
	}
	po := paho.NewClientOptions().SetClientID(*clientID).SetCleanSession(true).SetAutoReconnect(false).
		SetConnectTimeout(10 * time.Second).SetProtocolVersion(4).SetUsername(*user)
	for _, b := range brokers {
		po.AddBroker(b)
	}
	if *pwFile != "" {
		b, err := os.ReadFile(*pwFile)
		if err != nil {
			fmt.Fprintf(stderr, "--password-file: %v\n", err)
			return exitUsage
		}
		po.SetPassword(strings.TrimSpace(string(b)))
	}
	if *ca != "" || *cert != "" {
		tc, err := tlsConfig(*ca, *cert, *key)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitUsage
		}
		po.SetTLSConfig(tc)
	}
	replies := make(chan []byte, 16)
	mc := paho.NewClient(po)
	if tok := mc.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		fmt.Fprintf(stderr, "papscan-fleet send: cannot connect to %v: %v\n", brokers, tok.Error())
		return exitNoAnswer
	}
	defer mc.Disconnect(250)
	replyTopic := command.ReplyTopic(*prefix, *robot)
	tok := mc.Subscribe(replyTopic, 1, func(_ paho.Client, m paho.Message) {
		select {
		case replies <- append([]byte(nil), m.Payload()...):
		default: // never block paho's goroutine
		}
	})
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		fmt.Fprintf(stderr, "papscan-fleet send: subscribe %s: %v\n", replyTopic, tok.Error())
		return exitNoAnswer
	}
	cmdTopic := command.CmdTopic(*prefix, *robot)
	if tok := mc.Publish(cmdTopic, 1, false, msg); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		fmt.Fprintf(stderr, "papscan-fleet send: publish %s: %v\n", cmdTopic, tok.Error())
		return exitNoAnswer
	}
	fmt.Fprintf(stderr, "sent %s %s to %s; waiting for the reply on %s\n", typ, cmd.ID, *robot, replyTopic)
	wait := time.NewTimer(*timeout)
	defer wait.Stop()
	for {
		select {
		case <-ctx.Done():
			return exitNoAnswer
		case <-wait.C:
			fmt.Fprintf(stderr, "papscan-fleet send: no reply to %s within %v (is the robot online? `status` tells what it did)\n", cmd.ID, *timeout)
			return exitNoAnswer
		case b := <-replies:
			r, err := command.DecodeReply(b)
			if err != nil {
				fmt.Fprintf(stderr, "papscan-fleet send: ignoring a malformed reply: %v\n", err)
				continue
			}
			if r.ID != cmd.ID {
				continue // another command's reply
			}
			return printReply(r, *outFile, stdout, stderr)
		}
	}
}

// printReply prints the reply as indented JSON (a fetched file's data is
// written to out instead, when set).
func printReply(r command.Reply, out string, stdout, stderr io.Writer) int {
	if r.OK && r.Type == command.TypeFetch && out != "" {
		var fr command.FetchResult
		if err := json.Unmarshal(r.Result, &fr); err != nil {
			fmt.Fprintf(stderr, "papscan-fleet send: fetch result: %v\n", err)
			return exitRefused
		}
		if err := os.WriteFile(out, fr.Data, 0o600); err != nil {
			fmt.Fprintf(stderr, "papscan-fleet send: --out: %v\n", err)
			return exitRefused
		}
		fr.Data = nil
		r.Result, _ = json.Marshal(fr)
		fmt.Fprintf(stderr, "wrote %s (%d bytes, sha256 %s)\n", out, fr.Size, fr.SHA256)
	}
	b, err := command.EncodeReply(r)
	if err == nil {
		var buf bytes.Buffer
		if json.Indent(&buf, b, "", "  ") == nil {
			b = buf.Bytes()
		}
	}
	fmt.Fprintf(stdout, "%s\n", b)
	if !r.OK {
		return exitRefused
	}
	return 0
}
