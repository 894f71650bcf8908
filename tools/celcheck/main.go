// Command celcheck compiles deployctl's ValidatingAdmissionPolicies with the Kubernetes
// API server's own CEL environment and evaluates them on admission requests, without an
// API server: the same compiler and validator packages that kube-apiserver links.
//
// Usage: celcheck CASES.json POLICY.yaml...
//
// CASES.json is a list of {"name", "policy", "operation", "user", "groups", "object",
// "oldObject", "params"}. For each case it prints one JSON line: the policy's compile
// errors (an expression that does not compile is an error in every case) and every
// validation that denied, with its message. The Python test
// (tests/manifests/test_admission_cel.py) writes the cases and judges the answers.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	yamlutil "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/cel/environment"
	"sigs.k8s.io/yaml"
)

type testCase struct {
	Name      string                 `json:"name"`
	Policy    string                 `json:"policy"`
	Operation string                 `json:"operation"`
	User      string                 `json:"user"`
	Groups    []string               `json:"groups"`
	Object    map[string]interface{} `json:"object"`
	OldObject map[string]interface{} `json:"oldObject"`
	Params    map[string]interface{} `json:"params"`
}

type answer struct {
	Name          string   `json:"name"`
	CompileErrors []string `json:"compileErrors"`
	Denied        []string `json:"denied"`
	Errors        []string `json:"errors"`
}

var rollouts = schema.GroupVersionResource{Group: "deployctl.io", Version: "v1alpha1", Resource: "rollouts"}
var rolloutKind = schema.GroupVersionKind{Group: "deployctl.io", Version: "v1alpha1", Kind: "Rollout"}

// compile builds a validator as the ValidatingAdmissionPolicy plugin does: variables,
// then validations and message expressions, in the API server's base environment.
func compile(policy *admissionregistrationv1.ValidatingAdmissionPolicy) (validating.Validator, []string) {
	hasParams := policy.Spec.ParamKind != nil
	withAuthz := cel.OptionalVariableDeclarations{HasParams: hasParams, HasAuthorizer: true}
	forMessages := cel.OptionalVariableDeclarations{HasParams: hasParams, HasAuthorizer: false}
	compiler, err := cel.NewCompositedCompiler(environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()))
	if err != nil {
		return nil, []string{err.Error()}
	}
	variables := make([]cel.NamedExpressionAccessor, 0, len(policy.Spec.Variables))
	for _, v := range policy.Spec.Variables {
		variables = append(variables, &validating.Variable{Name: v.Name, Expression: v.Expression})
	}
	compiler.CompileAndStoreVariables(variables, withAuthz, environment.StoredExpressions)
	checks := make([]cel.ExpressionAccessor, len(policy.Spec.Validations))
	messages := make([]cel.ExpressionAccessor, len(policy.Spec.Validations))
	for i, v := range policy.Spec.Validations {
		checks[i] = &validating.ValidationCondition{Expression: v.Expression, Message: v.Message, Reason: v.Reason}
		if v.MessageExpression != "" {
			messages[i] = &validating.MessageExpressionCondition{MessageExpression: v.MessageExpression}
		}
	}
	validationFilter := compiler.CompileCondition(checks, withAuthz, environment.StoredExpressions)
	messageFilter := compiler.CompileCondition(messages, forMessages, environment.StoredExpressions)
	// Compile errors surface when the validator runs, as errors of every case.
	noAudit := compiler.CompileCondition([]cel.ExpressionAccessor{}, withAuthz, environment.StoredExpressions)
	return validating.NewValidator(validationFilter, nil, noAudit, messageFilter, policy.Spec.FailurePolicy, nil), nil
}

func load(paths []string) (map[string]*admissionregistrationv1.ValidatingAdmissionPolicy, error) {
	found := map[string]*admissionregistrationv1.ValidatingAdmissionPolicy{}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		reader := yamlutil.NewYAMLReader(bufioReader(data))
		for {
			doc, err := reader.Read()
			if err != nil {
				break
			}
			var head struct{ Kind string }
			if err := yaml.Unmarshal(doc, &head); err != nil || head.Kind != "ValidatingAdmissionPolicy" {
				continue
			}
			policy := &admissionregistrationv1.ValidatingAdmissionPolicy{}
			if err := yaml.UnmarshalStrict(doc, policy); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			found[policy.Name] = policy
		}
	}
	return found, nil
}

func object(content map[string]interface{}) runtime.Object {
	if content == nil {
		return nil
	}
	return &unstructured.Unstructured{Object: content}
}

func run(c testCase, policy *admissionregistrationv1.ValidatingAdmissionPolicy) answer {
	out := answer{Name: c.Name, CompileErrors: []string{}, Denied: []string{}, Errors: []string{}}
	validator, problems := compile(policy)
	out.CompileErrors = append(out.CompileErrors, problems...)
	obj, old := object(c.Object), object(c.OldObject)
	namespace, name := "", ""
	if c.Object != nil {
		u := obj.(*unstructured.Unstructured)
		namespace, name = u.GetNamespace(), u.GetName()
	}
	who := &user.DefaultInfo{Name: c.User, Groups: append(c.Groups, "system:authenticated")}
	attrs := admission.NewAttributesRecord(obj, old, rolloutKind, namespace, name, rollouts, "", admission.Operation(c.Operation), nil, false, who)
	versioned := &admission.VersionedAttributes{
		Attributes:         attrs,
		VersionedObject:    admission.NewLazyObject(obj),
		VersionedOldObject: admission.NewLazyObject(old),
		VersionedKind:      rolloutKind,
	}
	var params runtime.Object
	if c.Params != nil {
		params = object(c.Params)
	}
	result := validator.Validate(context.Background(), rollouts, versioned, params, nil, celconfig.RuntimeCELCostBudget, nil)
	for _, decision := range result.Decisions {
		switch decision.Evaluation {
		case validating.EvalDeny:
			out.Denied = append(out.Denied, decision.Message)
		case validating.EvalError:
			out.Errors = append(out.Errors, decision.Message)
		}
	}
	return out
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: celcheck CASES.json POLICY.yaml...")
		os.Exit(2)
	}
	policies, err := load(os.Args[2:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var cases []testCase
	if err := json.Unmarshal(data, &cases); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	encoder := json.NewEncoder(os.Stdout)
	for _, c := range cases {
		policy, ok := policies[c.Policy]
		if !ok {
			fmt.Fprintf(os.Stderr, "no policy %q\n", c.Policy)
			os.Exit(2)
		}
		if err := encoder.Encode(run(c, policy)); err != nil {
			os.Exit(2)
		}
	}
}
