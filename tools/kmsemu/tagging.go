package kmsemu

import (
	"sort"
	"strings"
)

// GetResources of the Resource Groups Tagging API, for KMS keys:
// https://docs.aws.amazon.com/resourcegroupstagging/latest/APIReference/API_GetResources.html
//
// TagFilters match keys that carry every filter's tag key (AND) with one of
// its values (OR), any value when Values is empty. Untagged keys are never
// returned. ResourcesPerPage is 1–100 (default 50, an assumption: the API
// reference gives no default); the last page has an empty PaginationToken.
// ResourceTypeFilters other than "kms" and "kms:key" match nothing here.
func (s *Server) getResources(c *call, body []byte) (any, *apiError) {
	var in struct {
		PaginationToken *string `json:"PaginationToken"`
		TagFilters      []struct {
			Key    *string  `json:"Key"`
			Values []string `json:"Values"`
		} `json:"TagFilters"`
		ResourcesPerPage    *int     `json:"ResourcesPerPage"`
		TagsPerPage         *int     `json:"TagsPerPage"`
		ResourceTypeFilters []string `json:"ResourceTypeFilters"`
		ResourceARNList     []string `json:"ResourceARNList"`
		// IncludeComplianceDetails and ExcludeCompliantResources are accepted
		// and ignored: no tag policies here.
		IncludeComplianceDetails  *bool `json:"IncludeComplianceDetails"`
		ExcludeCompliantResources *bool `json:"ExcludeCompliantResources"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	invalid := func(format string, args ...any) *apiError {
		return errf(400, "InvalidParameterException", format, args...)
	}
	if in.ResourceARNList != nil && (in.TagFilters != nil || in.ResourceTypeFilters != nil || in.PaginationToken != nil && *in.PaginationToken != "" || in.ResourcesPerPage != nil || in.TagsPerPage != nil) {
		return nil, invalid("ResourceARNList cannot be combined with TagFilters, ResourceTypeFilters or pagination parameters.")
	}
	if len(in.ResourceARNList) > 100 {
		return nil, invalid("ResourceARNList can hold at most 100 ARNs.")
	}
	if len(in.TagFilters) > 50 {
		return nil, invalid("TagFilters can hold at most 50 filters.")
	}
	perPage := 50
	if in.ResourcesPerPage != nil {
		if *in.ResourcesPerPage < 1 || *in.ResourcesPerPage > 100 {
			return nil, invalid("ResourcesPerPage must be between 1 and 100.")
		}
		perPage = *in.ResourcesPerPage
	}
	if in.TagsPerPage != nil && (*in.TagsPerPage < 100 || *in.TagsPerPage > 500) {
		return nil, invalid("TagsPerPage must be between 100 and 500.")
	}
	for _, f := range in.TagFilters {
		if f.Key == nil || *f.Key == "" || len(*f.Key) > 128 {
			return nil, invalid("A TagFilter needs a Key of 1 to 128 characters.")
		}
		if len(f.Values) > 20 {
			return nil, invalid("A TagFilter can hold at most 20 values.")
		}
	}
	kmsKeys := in.ResourceTypeFilters == nil
	for _, t := range in.ResourceTypeFilters {
		if t == "kms" || t == "kms:key" {
			kmsKeys = true
		}
	}
	var last string
	if in.PaginationToken != nil && *in.PaginationToken != "" {
		var ok bool
		if last, ok = parseMarker("resources", in.PaginationToken); !ok {
			return nil, invalid("PaginationToken is not valid.")
		}
	}
	arns := map[string]bool{}
	for _, a := range in.ResourceARNList {
		arns[a] = true
	}

	type tag struct {
		Key   string `json:"Key"`
		Value string `json:"Value"`
	}
	type mapping struct {
		ResourceARN string `json:"ResourceARN"`
		Tags        []tag  `json:"Tags"`
	}
	out := struct {
		PaginationToken        string    `json:"PaginationToken"`
		ResourceTagMappingList []mapping `json:"ResourceTagMappingList"`
	}{ResourceTagMappingList: []mapping{}}
	if !kmsKeys {
		return out, nil
	}
	keys := s.region(c.account, c.region).sortedKeys()
	i := sort.Search(len(keys), func(i int) bool { return keys[i].id > last })
	var gone []*key
	for ; i < len(keys); i++ {
		k := keys[i]
		if len(k.tags) == 0 || (in.ResourceARNList != nil && !arns[k.arn]) || !matchTags(k.tags, in.TagFilters) {
			continue
		}
		if k.state == "PendingDeletion" && !k.deletionDate.IsZero() && !c.now.Before(k.deletionDate) {
			gone = append(gone, k)
			continue
		}
		if len(out.ResourceTagMappingList) == perPage {
			out.PaginationToken = marker("resources", keys[i-1].id)
			break
		}
		m := mapping{ResourceARN: k.arn, Tags: make([]tag, 0, len(k.tags))}
		for _, tk := range sortedKeys(k.tags) {
			m.Tags = append(m.Tags, tag{tk, k.tags[tk]})
		}
		out.ResourceTagMappingList = append(out.ResourceTagMappingList, m)
	}
	if out.PaginationToken != "" {
		// the token names the last key returned, not the last key looked at
		last := out.ResourceTagMappingList[len(out.ResourceTagMappingList)-1].ResourceARN
		out.PaginationToken = marker("resources", last[strings.LastIndex(last, "/")+1:])
	}
	for _, k := range gone {
		s.settle(k, c.now)
	}
	return out, nil
}

func matchTags(tags map[string]string, filters []struct {
	Key    *string  `json:"Key"`
	Values []string `json:"Values"`
}) bool {
	for _, f := range filters {
		v, ok := tags[*f.Key]
		if !ok {
			return false
		}
		if len(f.Values) == 0 {
			continue
		}
		match := false
		for _, want := range f.Values {
			if v == want {
				match = true
				break
			}
		}
		if !match {
			return false
		}
	}
	return true
}
